// SCRAM handshake rate (issue 13). Two tables:
//  1. In process, the server's own work per SCRAM exchange (ScramServer.first + final: hashes
//     and HMACs over the stored keys, no PBKDF2: the server never derives the password), next to
//     a PLAIN check (one PBKDF2 at the credential's iterations) and the client's PBKDF2, per
//     mechanism and iteration count. Exchanges per second on one core, median of 5 runs.
//  2. Over TCP against a real Kafka listener (a broker on a temp dir, in this process): full
//     logins (connect, SaslHandshake, two SaslAuthenticate, close) per second with SCRAM-SHA-512
//     at 8192 iterations, 1 and 8 at a time. The client's PBKDF2 runs in this same process, so
//     this is the rate one core gives client + server together; the server's share is table 1.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Broker } from '../host/broker/broker.js';
import { startKafkaServer } from '../host/kafka/server.js';
import { kafkaSecurity } from '../host/kafka/security.js';
import { silentLogger } from '../host/logging.js';
import { MetricsRegistry } from '../host/metrics/registry.js';
import { KafkaAdminConnection } from '../host/admin/kafka-admin.js';
import { saslHandshake } from '../host/kafka/apis/sasl-handshake.js';
import { saslAuthenticate } from '../host/kafka/apis/sasl-authenticate.js';
import { makeCredential, passwordMatches, ScramClient, ScramServer, type ScramMechanism } from '../host/security/index.js';
import { median, type Table } from './table.js';

export const subject = 'security';
export const order = 80;

const quick = process.env.TRIBUTARY_BENCH_QUICK === '1';

function perSecond(fn: () => void, minMs: number): number {
  let n = 0;
  const start = performance.now();
  while (performance.now() - start < minMs) {
    fn();
    n++;
  }
  return (n * 1000) / (performance.now() - start);
}

function inProcess(): Table {
  // Warm-up: the first timed row would otherwise pay for the JIT.
  const warm = makeCredential('SCRAM-SHA-256', 'w', 4096);
  for (let i = 0; i < (quick ? 10 : 300); i++) {
    const server = new ScramServer({ mechanism: 'SCRAM-SHA-256', lookup: () => warm, fakeSecret: Buffer.alloc(32), fakeIterations: 4096 });
    server.first(new ScramClient('w', 'w', 'SCRAM-SHA-256').first());
  }
  const rows: Array<Array<string | number>> = [];
  for (const mechanism of ['SCRAM-SHA-256', 'SCRAM-SHA-512'] as ScramMechanism[]) {
    for (const iterations of [4096, 8192]) {
      const cred = makeCredential(mechanism, 'bench-password', iterations);
      // Client messages prepared ahead, so only the server's calls are timed.
      const prepared = Array.from({ length: quick ? 10 : 50 }, () => {
        const server = new ScramServer({ mechanism, lookup: () => cred, fakeSecret: Buffer.alloc(32), fakeIterations: 4096 });
        const client = new ScramClient('bench', 'bench-password', mechanism);
        const first = client.first();
        const serverFirst = server.first(first);
        const clientNonce = first.slice(first.indexOf(',r=') + 3);
        return { first, final: client.final(serverFirst), nonce: serverFirst.split(',')[0].slice(2 + clientNonce.length) };
      });
      const serverRates: number[] = [];
      for (let rep = 0; rep < 5; rep++) {
        const start = performance.now();
        let n = 0;
        // Each prepared exchange replayed 40 times: a fresh server with the same nonce verifies
        // the same client proof (the server's work is the same as for a new client).
        for (let round = 0; round < (quick ? 2 : 40); round++) {
          for (const p of prepared) {
            const server = new ScramServer({ mechanism, lookup: () => cred, fakeSecret: Buffer.alloc(32), fakeIterations: 4096, serverNonce: p.nonce });
            server.first(p.first);
            server.final(p.final);
            n++;
          }
        }
        serverRates.push((n * 1000) / (performance.now() - start));
      }
      const plain = median(Array.from({ length: 3 }, () => perSecond(() => passwordMatches(cred, 'bench-password'), quick ? 50 : 300)));
      const client = median(Array.from({ length: 3 }, () => perSecond(() => makeCredential(mechanism, 'bench-password', iterations), quick ? 50 : 300)));
      rows.push([mechanism, iterations, Math.round(median(serverRates)), Math.round(plain), Math.round(client)]);
    }
  }
  return {
    title: 'SCRAM and PLAIN, one core, in process (per second)',
    columns: ['mechanism', 'iterations', 'SCRAM exchanges (server work)', 'PLAIN checks', 'client PBKDF2'],
    rows,
    notes: ['A SCRAM server never runs PBKDF2 (it stores StoredKey/ServerKey); PLAIN makes the server derive the password once per login, so its rate is bounded by PBKDF2.'],
  };
}

async function overTcp(): Promise<Table> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-security-'));
  const metrics = new MetricsRegistry();
  const broker = await Broker.open({ dataDir: dir }, { logger: silentLogger, metrics });
  const security = kafkaSecurity({ loginFailuresMax: 1_000_000 }, broker.metadata);
  const listener = await startKafkaServer({ broker, groups: undefined, logger: silentLogger, metrics, security }, { host: '127.0.0.1', port: 0, dataDir: dir });
  const cred = makeCredential('SCRAM-SHA-512', 'bench-password', 8192);
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
  await broker.metadata.propose([{ type: 'scramCredential', user: 'bench', mechanism: 'SCRAM-SHA-512', iterations: 8192, salt: b64(cred.salt), storedKey: b64(cred.storedKey), serverKey: b64(cred.serverKey) }]);
  const login = async () => {
    const c = await KafkaAdminConnection.open(listener.address);
    await c.authenticate(saslHandshake, saslAuthenticate, 'bench', 'bench-password');
    c.close();
  };
  const rows: Array<Array<string | number>> = [];
  try {
    for (const concurrency of [1, 8]) {
      const total = quick ? 16 : 200;
      const start = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next++ < total) await login();
      }));
      const ms = performance.now() - start;
      rows.push([concurrency, total, Math.round((total * 1000) / ms), +(ms / total).toFixed(2)]);
    }
  } finally {
    await listener.close();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    title: 'SASL/SCRAM-SHA-512 logins over TCP, 8192 iterations (client and server in one process)',
    columns: ['at once', 'logins', 'logins/s', 'ms per login'],
    rows,
    notes: ['Each login: TCP connect, SaslHandshake v1, SaslAuthenticate v1 ×2, close. The client PBKDF2 (table above) is most of each login.'],
  };
}

export async function run(): Promise<Table[]> {
  return [inProcess(), await overTcp()];
}
