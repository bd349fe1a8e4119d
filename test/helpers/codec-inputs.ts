// Test inputs shared by the codec suites: deterministic pseudo-random bytes, realistic sensor
// JSON and mixed content (random runs, repeats and byte runs), and the check every hostile-input
// case makes (a BrokerError CORRUPT_MESSAGE whose message names the fault). Independent of the core.
import type { Test } from 'tap';
import { BrokerError } from '../../host/errors/index.js';

export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(n: number, seed: number): Buffer {
  const rnd = prng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (rnd() * 256) | 0;
  return b;
}

export function sensorJson(n: number, seed = 1): Buffer {
  const rnd = prng(seed);
  const parts: string[] = [];
  let len = 0;
  for (let i = 0; len < n; i++) {
    const s = JSON.stringify({ device: `sensor-${(rnd() * 40) | 0}`, ts: 1732147200000 + i * 137, temperature: Math.round(200 + rnd() * 50) / 10, status: rnd() < 0.9 ? 'ok' : 'degraded' }) + '\n';
    parts.push(s);
    len += s.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

/** Mixed input: runs of random bytes, repeats of earlier bytes, and byte runs. */
export function mixedBytes(n: number, seed: number): Buffer {
  const rnd = prng(seed);
  const b = Buffer.alloc(n);
  let i = 0;
  while (i < n) {
    const kind = rnd();
    const len = Math.min(n - i, 1 + ((rnd() * (kind < 0.1 ? 3000 : 300)) | 0));
    if (kind < 0.4 || i === 0) for (let k = 0; k < len; k++) b[i + k] = (rnd() * 256) | 0;
    else if (kind < 0.8) {
      const from = (rnd() * i) | 0;
      for (let k = 0; k < len; k++) b[i + k] = b[from + k];
    } else b.fill((rnd() * 256) | 0, i, i + len);
    i += len;
  }
  return b;
}

export function corrupt(t: Test, fn: () => unknown, pattern: RegExp, name: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof BrokerError, `${name}: throws a BrokerError`);
  if (err instanceof BrokerError) {
    t.equal(err.code, 'CORRUPT_MESSAGE', `${name}: code`);
    t.match(err.message, pattern, `${name}: message names the fault (${err.message})`);
  } else if (err) {
    t.fail(`${name}: ${(err as Error).stack}`);
  }
}
