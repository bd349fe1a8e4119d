// Producer ids for idempotent producers (InitProducerId), never reused across restarts.
//
// On-disk format: one small JSON file, `{"format":1,"reservedUpTo":N}`: every id below N may
// have been handed out. Ids are reserved in blocks written ahead: before handing out id N the
// allocator durably records N + blockSize (temp file, fsync, rename over, fsync the directory),
// so a crash at any point leaves either the old or the new reservation on disk, both of which
// cover every id already given to a client. After a restart allocation resumes at reservedUpTo;
// the unused rest of the last block is skipped (ids are plentiful: 2^53).
//
// Crash policy: a missing file means a fresh data dir (start at 0). An unreadable file stops
// the broker with an error naming the file: guessing could hand an id out twice.
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

const MAX_PRODUCER_ID = Number.MAX_SAFE_INTEGER;

export interface ProducerIdsOptions {
  /** Ids reserved per durable write. */
  blockSize: number;
}

export class ProducerIds {
  private next: number;
  private reservedUpTo: number;
  private reserving: Promise<void> | null = null;

  private constructor(
    private readonly file: string,
    reservedUpTo: number,
    private readonly blockSize: number,
  ) {
    this.next = reservedUpTo;
    this.reservedUpTo = reservedUpTo;
  }

  static async open(file: string, options: ProducerIdsOptions): Promise<ProducerIds> {
    if (!Number.isInteger(options.blockSize) || options.blockSize <= 0) throw new Error(`producer id blockSize must be a positive integer`);
    await mkdir(dirname(file), { recursive: true });
    let reservedUpTo = 0;
    let text: string | null = null;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (text !== null) {
      let parsed: { format?: unknown; reservedUpTo?: unknown };
      try {
        parsed = JSON.parse(text);
      } catch {
        throw new Error(`producer id file ${file} is unreadable; refusing to guess (ids must never be reused)`);
      }
      if (parsed.format !== 1 || !Number.isSafeInteger(parsed.reservedUpTo) || (parsed.reservedUpTo as number) < 0) {
        throw new Error(`producer id file ${file} has an unexpected content: ${text.slice(0, 100)}`);
      }
      reservedUpTo = parsed.reservedUpTo as number;
    }
    return new ProducerIds(file, reservedUpTo, options.blockSize);
  }

  /** Next never-used producer id (durably reserved before it is returned). */
  async allocate(): Promise<number> {
    while (this.next >= this.reservedUpTo) {
      if (!this.reserving) {
        this.reserving = this.reserve(this.reservedUpTo + this.blockSize).finally(() => (this.reserving = null));
      }
      await this.reserving;
    }
    // No await between the check above and the increment: two callers never get one id.
    return this.next++;
  }

  private async reserve(upTo: number): Promise<void> {
    if (upTo > MAX_PRODUCER_ID) throw new Error('producer ids exhausted');
    const tmp = `${this.file}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify({ format: 1, reservedUpTo: upTo }) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.file);
    const dir = await open(dirname(this.file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    this.reservedUpTo = upTo;
  }
}
