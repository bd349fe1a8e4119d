// The durable mark of producer-id allocation: `<dataDir>/producer-ids`.
//
// On-disk format: one small JSON document, `{"format":1,"reservedUpTo":N}\n`: every producer id
// below N may have been handed out. The allocator (host/broker/producer-ids.ts) reserves ids in
// blocks written ahead (a ProducerIdsBlock record), so the file only moves forward.
//
// Crash policy: a write goes to `producer-ids.tmp`, is fsynced, renamed over the file, and the
// directory is fsynced, so after a power cut the file holds the old or the new mark, both of
// which cover every id already given to a client. A leftover `.tmp` is an unfinished write and
// is ignored. A missing file means a fresh data dir (0). An unreadable file stops the broker
// with an error naming the file: guessing could hand an id out twice.
import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { writeDurably } from '../topic-registry.js';

export const PRODUCER_IDS_FILE = 'producer-ids';
const FORMAT = 1;

export class ProducerIdsFile {
  private constructor(
    readonly path: string,
    private mark: number,
  ) {}

  static async open(path: string): Promise<ProducerIdsFile> {
    await mkdir(dirname(path), { recursive: true });
    let text: string | null = null;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text === null) return new ProducerIdsFile(path, 0);
    let parsed: { format?: unknown; reservedUpTo?: unknown };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`producer id file ${path} is unreadable; refusing to guess (ids must never be reused)`);
    }
    if (parsed.format !== FORMAT || !Number.isSafeInteger(parsed.reservedUpTo) || (parsed.reservedUpTo as number) < 0) {
      throw new Error(`producer id file ${path} has an unexpected content: ${text.slice(0, 100)}`);
    }
    return new ProducerIdsFile(path, parsed.reservedUpTo as number);
  }

  /** Every id below this may have been handed out. */
  get reservedUpTo(): number {
    return this.mark;
  }

  /** Durably moves the mark to `upTo` (never backwards); the in-memory mark moves only once it is on disk. */
  async write(upTo: number): Promise<void> {
    if (!Number.isSafeInteger(upTo) || upTo < this.mark) throw new Error(`producer ids: the reservation cannot move from ${this.mark} to ${upTo}`);
    await writeDurably(dirname(this.path), JSON.stringify({ format: FORMAT, reservedUpTo: upTo }) + '\n', basename(this.path));
    this.mark = upTo;
  }
}
