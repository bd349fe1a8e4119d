// kcat (librdkafka, a client nobody here wrote) against the Kafka listener: metadata (-L),
// keyed binary produce with every codec (-z gzip|snappy|lz4, zstd stored or refused clearly),
// and consuming from the beginning, an offset and a timestamp, byte-exact. Skips without kcat.
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haveCommand } from '../helpers/index.js';
import { startKafka } from '../unit/kafka/harness.js';

if (!haveCommand('kcat')) {
  t.comment('kcat is not installed (Debian package `kcat`): skipping the kcat interop suite');
  t.pass('skipped: no kcat');
} else {
  run();
}

interface Ran {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a command without blocking the event loop (the broker may live in this process). */
function sh(cmd: string, args: string[], input?: Buffer | string, timeoutMs = 30_000): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.end(input ?? '');
  });
}

interface Consumed {
  offset: number;
  partition: number;
  key: Buffer;
  value: Buffer;
}

// Format: offset\npartition\nkeyLength\n<int32 payload length><key bytes><payload bytes>
const FORMAT = '%o\\n%p\\n%K\\n%R%k%s';

function parseConsumed(buf: Buffer): Consumed[] {
  const out: Consumed[] = [];
  let pos = 0;
  const line = () => {
    const nl = buf.indexOf(10, pos);
    const s = buf.toString('utf8', pos, nl);
    pos = nl + 1;
    return Number(s);
  };
  while (pos < buf.length) {
    const offset = line();
    const partition = line();
    const keyLen = line();
    const valueLen = buf.readInt32BE(pos);
    pos += 4;
    const key = buf.subarray(pos, pos + Math.max(0, keyLen));
    pos += Math.max(0, keyLen);
    const value = buf.subarray(pos, pos + Math.max(0, valueLen));
    pos += Math.max(0, valueLen);
    out.push({ offset, partition, key, value });
  }
  return out;
}

function run(): void {
  t.test('kcat: metadata, keyed binary produce with every codec, consume from beginning/offset/timestamp', async (t) => {
    const k = await startKafka(t);
    const b = ['-b', k.bootstrap, '-X', 'socket.timeout.ms=10000'];
    const dir = await mkdtemp(join(tmpdir(), 'kcat-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));

    await t.test('-L lists this node and auto-created topics', async (t) => {
      await sh('kcat', [...b, '-P', '-t', 'meta-topic'], 'hello\n');
      const r = await sh('kcat', [...b, '-L', '-J']);
      t.equal(r.code, 0, r.stderr);
      const meta = JSON.parse(r.stdout.toString());
      t.same(meta.brokers, [{ id: 0, name: `127.0.0.1:${k.port}` }]);
      const topic = meta.topics.find((x: { topic: string }) => x.topic === 'meta-topic');
      t.ok(topic, 'the produced-to topic exists');
      t.same(topic.partitions.map((p: { leader: number }) => p.leader), [0]);
    });

    for (const codec of ['none', 'gzip', 'snappy', 'lz4', 'zstd']) {
      await t.test(`binary keyed messages with ${codec} come back byte-exact, in order`, async (t) => {
        const topic = `kcat-${codec}`;
        const payloads = [randomBytes(1), randomBytes(1000), randomBytes(100_000), Buffer.alloc(5000, 0x41), randomBytes(333)];
        const files: string[] = [];
        for (const [i, p] of payloads.entries()) {
          const f = join(dir, `${codec}-${i}.bin`);
          await writeFile(f, p);
          files.push(f);
        }
        const key = `device-${codec}`;
        const prod = await sh('kcat', [...b, '-P', '-t', topic, '-k', key, '-X', `compression.codec=${codec}`, ...files]);
        if (codec === 'zstd' && prod.code !== 0) {
          t.match(prod.stderr, /compression|UNSUPPORTED/i, `zstd refused clearly: ${prod.stderr.trim().split('\n').pop()}`);
          return;
        }
        t.equal(prod.code, 0, `produce ok ${prod.stderr}`);
        const cons = await sh('kcat', [...b, '-C', '-t', topic, '-o', 'beginning', '-e', '-f', FORMAT]);
        t.equal(cons.code, 0, cons.stderr);
        const got = parseConsumed(cons.stdout);
        t.equal(got.length, payloads.length, 'every message once');
        t.same(got.map((g) => g.offset), [0, 1, 2, 3, 4], 'offsets assigned in order');
        t.ok(got.every((g, i) => g.key.toString() === key && g.value.equals(payloads[i]!)), 'keys and payloads byte-exact');
      });
    }

    await t.test('keyed text lines: order per key; -o <offset> and -o s@<timestamp>', async (t) => {
      const topic = 'kcat-lines';
      const lines1 = Array.from({ length: 30 }, (_, i) => `k${i % 3}:first-${i}`);
      const p1 = await sh('kcat', [...b, '-P', '-t', topic, '-K', ':'], lines1.join('\n') + '\n');
      t.equal(p1.code, 0, p1.stderr);
      const tsBetween = Date.now() + 1;
      await new Promise((r) => setTimeout(r, 5)); // let the clock pass tsBetween
      const lines2 = Array.from({ length: 10 }, (_, i) => `k${i % 3}:second-${i}`);
      const p2 = await sh('kcat', [...b, '-P', '-t', topic, '-K', ':'], lines2.join('\n') + '\n');
      t.equal(p2.code, 0, p2.stderr);

      const all = parseConsumed((await sh('kcat', [...b, '-C', '-t', topic, '-o', 'beginning', '-e', '-f', FORMAT])).stdout);
      t.equal(all.length, 40);
      for (const key of ['k0', 'k1', 'k2']) {
        const mine = all.filter((g) => g.key.toString() === key);
        const expected = [...lines1, ...lines2].filter((l) => l.startsWith(`${key}:`)).map((l) => l.slice(3));
        t.same(mine.map((g) => g.value.toString()), expected, `${key}: every value, in send order`);
      }

      const fromOffset = parseConsumed((await sh('kcat', [...b, '-C', '-t', topic, '-p', '0', '-o', '25', '-e', '-f', FORMAT])).stdout);
      t.equal(fromOffset[0]?.offset, 25, '-o 25 starts at offset 25');
      t.equal(fromOffset.length, 15);

      const fromTime = parseConsumed((await sh('kcat', [...b, '-C', '-t', topic, '-o', `s@${tsBetween}`, '-e', '-f', FORMAT])).stdout);
      t.same(fromTime.map((g) => g.value.toString()), lines2.map((l) => l.slice(3)), '-o s@<ts> starts at the first record at or after ts');
    });
  });
}
