// Power cuts for process-level tests: a broker started with `powerCutShim` records, per file
// under its data dir, the length each successful fsync/fdatasync made durable (the preload in
// power-cut-preload.ts, loaded with `node --import`); after kill -9 of that process,
// `cutToSynced` truncates every file it recorded to what a power cut would have left: the length
// at its last sync (or, never synced, at its first open by that process). kill -9 alone keeps
// the page cache, so it cannot show what an unsynced acknowledgement costs; this can.
import { readFile, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const POWER_CUT_PRELOAD = fileURLToPath(new URL('./power-cut-preload.js', import.meta.url));

export interface PowerCutShim {
  /** `node` options for the broker process. */
  nodeArgs: string[];
  env: Record<string, string>;
  /** The ledger this process writes (one per start: a cut replays only the last process's). */
  ledger: string;
}

/** The options that start a broker over `dataDir` with the shim; `ledgerDir` must lie outside it. */
export function powerCutShim(dataDir: string, ledgerDir: string, tag: string): PowerCutShim {
  const ledger = join(ledgerDir, `power-cut-${tag}-${Date.now()}.jsonl`);
  return { nodeArgs: ['--import', POWER_CUT_PRELOAD], env: { POWER_CUT_LEDGER: ledger, POWER_CUT_ROOT: dataDir }, ledger };
}

export interface CutReport {
  /** Files the ledger names that still exist. */
  files: number;
  /** Files cut shorter, with their length before and after. */
  cut: Array<{ path: string; from: number; to: number }>;
  bytesCut: number;
}

type Entry = { op: 'base' | 'sync' | 'truncate'; path: string; bytes: number } | { op: 'rename'; from: string; to: string } | { op: 'unlink'; path: string };

/** The durable length of each file as the ledger tells it (undefined: unknown, left as it is). */
export function durableLengths(text: string): Map<string, number | undefined> {
  const durable = new Map<string, number | undefined>();
  for (const line of text.split('\n')) {
    let e: Entry;
    try {
      e = JSON.parse(line) as Entry;
    } catch {
      continue; // a torn last line, or the empty one after the last newline
    }
    if (e.op === 'base') {
      if (!durable.has(e.path)) durable.set(e.path, e.bytes);
    } else if (e.op === 'sync') durable.set(e.path, e.bytes);
    else if (e.op === 'truncate') {
      const was = durable.get(e.path);
      durable.set(e.path, was === undefined ? e.bytes : Math.min(was, e.bytes));
    } else if (e.op === 'rename') {
      durable.set(e.to, durable.get(e.from));
      durable.delete(e.from);
    } else if (e.op === 'unlink') durable.delete(e.path);
  }
  return durable;
}

/** After kill -9 of the shimmed process: every file it wrote cut to its last-synced length. */
export async function cutToSynced(ledger: string): Promise<CutReport> {
  const durable = durableLengths(await readFile(ledger, 'utf8'));
  const report: CutReport = { files: 0, cut: [], bytesCut: 0 };
  for (const [path, bytes] of durable) {
    const size = await stat(path).then((s) => (s.isFile() ? s.size : -1), () => -1);
    if (size < 0) continue;
    report.files++;
    if (bytes === undefined || size <= bytes) continue;
    await truncate(path, bytes);
    report.cut.push({ path, from: size, to: bytes });
    report.bytesCut += size - bytes;
  }
  return report;
}
