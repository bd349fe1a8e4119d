import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

// Deterministic inputs and the timing loop shared by the codec benches (lz4, snappy, memory).
//
// Inputs: "sensor JSON" — newline-delimited readings as an IoT gateway batches them (device
// ids from a small fleet, monotonically rising timestamps, slowly drifting float readings,
// a few status strings) — and random bytes (incompressible). Both come from a seeded PRNG so
// every run, and every codec in a run, sees the same bytes.

// A handle on V8's gc() without --expose-gc on the command line (the runner is started plainly).
v8.setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as (() => void) | undefined;

/** mulberry32: a tiny seeded PRNG (returns floats in [0, 1)). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STATUSES = ['ok', 'ok', 'ok', 'ok', 'degraded', 'ok', 'calibrating', 'ok'];
const SITES = ['north-yard', 'south-yard', 'cold-store', 'dock-4'];

/** `bytes` of newline-delimited sensor readings (JSON), deterministic for a seed. */
export function sensorJson(bytes: number, seed = 42): Buffer {
  const rnd = prng(seed);
  const lines: string[] = [];
  let total = 0;
  let ts = 1732147200000;
  const temps = Array.from({ length: 64 }, () => 15 + rnd() * 10);
  for (let seq = 0; total < bytes; seq++) {
    const dev = Math.floor(rnd() * 64);
    ts += Math.floor(rnd() * 250);
    temps[dev] += (rnd() - 0.5) * 0.2;
    const line = JSON.stringify({
      device: `gw-${String(dev >> 4).padStart(2, '0')}/sensor-${String(dev).padStart(3, '0')}`,
      site: SITES[dev & 3],
      ts,
      seq,
      temperature: Math.round(temps[dev] * 100) / 100,
      humidity: Math.round((40 + rnd() * 20) * 10) / 10,
      pressure: Math.round((1005 + rnd() * 15) * 10) / 10,
      battery: Math.round((3.3 + rnd() * 0.9) * 100) / 100,
      status: STATUSES[Math.floor(rnd() * STATUSES.length)],
    });
    lines.push(line);
    total += line.length + 1;
  }
  return Buffer.from(lines.join('\n') + '\n').subarray(0, bytes);
}

/** `bytes` of seeded random bytes. */
export function randomBytes(bytes: number, seed = 7): Buffer {
  const rnd = prng(seed);
  const out = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i += 4) {
    const v = (rnd() * 4294967296) >>> 0;
    for (let k = 0; k < 4 && i + k < bytes; k++) out[i + k] = (v >>> (8 * k)) & 0xff;
  }
  return out;
}

export interface BenchInput {
  name: string;
  data: Buffer;
}

export function codecInputs(): BenchInput[] {
  return [
    { name: 'sensor JSON 1 MiB', data: sensorJson(1 << 20) },
    { name: 'sensor JSON 16 KiB', data: sensorJson(16 << 10, 43) },
    { name: 'random 1 MiB', data: randomBytes(1 << 20) },
    { name: 'random 16 KiB', data: randomBytes(16 << 10, 8) },
  ];
}

/**
 * Runs `fn` repeatedly for about `sliceMs` and returns MB/s for `bytesPerCall` per call.
 * One slice is one sample; callers interleave slices of competing codecs and take medians.
 */
export function timeSlice(fn: () => unknown, bytesPerCall: number, sliceMs: number): number {
  // Start every slice from a collected heap, so a codec is not billed for the garbage the
  // codec timed before it left behind (allocation-heavy peers would otherwise slow the next one).
  collectGarbage?.();
  let calls = 0;
  const start = process.hrtime.bigint();
  const cpuStart = cpuClock ? process.cpuUsage() : null;
  const budget = BigInt(Math.round(sliceMs * 1e6));
  let elapsed = 0n;
  do {
    for (let i = 0; i < 4; i++) fn();
    calls += 4;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < budget);
  let seconds = Number(elapsed) / 1e9;
  if (cpuStart) {
    const used = process.cpuUsage(cpuStart);
    seconds = (used.user + used.system) / 1e6;
  }
  return (bytesPerCall * calls) / 1e6 / seconds;
}

/**
 * BENCH_CLOCK=cpu divides by the process's CPU time instead of wall time: on a shared, busy
 * machine it removes time spent descheduled (it also counts GC helper threads, so it is
 * slightly pessimistic for allocation-heavy codecs). Wall time is the default.
 */
const cpuClock = process.env.BENCH_CLOCK === 'cpu';
export const clockName = cpuClock ? 'process CPU time' : 'wall time';

export interface CodecUnderTest {
  name: string;
  /** Rust compiled to wasm (the target's reference class). */
  rustWasm?: boolean;
  compress(src: Buffer): Uint8Array;
  decompress(packed: Uint8Array, originalBytes: number): Uint8Array;
  /** Format note for the table. */
  format: string;
}

export interface CodecResult {
  input: string;
  codec: string;
  format: string;
  compressMBs: number;
  decompressMBs: number;
  ratio: number;
  rustWasm: boolean;
}

/** Interleaved repetitions: every repetition runs one slice of every codec, for each op. */
export function measureCodecs(codecs: CodecUnderTest[], inputs: BenchInput[], repetitions: number, sliceMs: number): CodecResult[] {
  const results: CodecResult[] = [];
  for (const input of inputs) {
    const packed = codecs.map((c) => c.compress(input.data));
    // Every codec must round-trip before it is timed: a fast wrong answer is not a result.
    codecs.forEach((c, i) => {
      const back = c.decompress(packed[i], input.data.length);
      if (Buffer.compare(Buffer.from(back.buffer, back.byteOffset, back.byteLength), input.data) !== 0) {
        throw new Error(`${c.name} does not round-trip ${input.name}`);
      }
    });
    const comp: number[][] = codecs.map(() => []);
    const decomp: number[][] = codecs.map(() => []);
    for (let r = 0; r < repetitions; r++) {
      codecs.forEach((c, i) => comp[i].push(timeSlice(() => c.compress(input.data), input.data.length, sliceMs)));
      codecs.forEach((c, i) => decomp[i].push(timeSlice(() => c.decompress(packed[i], input.data.length), input.data.length, sliceMs)));
    }
    codecs.forEach((c, i) => {
      results.push({
        input: input.name,
        codec: c.name,
        format: c.format,
        compressMBs: median(comp[i]),
        decompressMBs: median(decomp[i]),
        ratio: input.data.length / packed[i].length,
        rustWasm: c.rustWasm ?? false,
      });
    });
  }
  return results;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Rows: one per (input, codec), with the core's speed relative to the best Rust→wasm peer. */
export function resultRows(results: CodecResult[], coreName: string): (string | number)[][] {
  const rows: (string | number)[][] = [];
  const inputs = [...new Set(results.map((r) => r.input))];
  for (const input of inputs) {
    const group = results.filter((r) => r.input === input);
    const rust = group.filter((r) => r.rustWasm);
    const bestC = Math.max(...rust.map((r) => r.compressMBs));
    const bestD = Math.max(...rust.map((r) => r.decompressMBs));
    for (const r of group) {
      rows.push([
        input,
        r.codec,
        r.format,
        Math.round(r.compressMBs),
        Math.round(r.decompressMBs),
        Number(r.ratio.toFixed(3)),
        r.codec === coreName && rust.length ? `${(r.compressMBs / bestC).toFixed(2)}× / ${(r.decompressMBs / bestD).toFixed(2)}×` : '',
      ]);
    }
  }
  return rows;
}
