// The uplink's state table: one small file per link, `<dataDir>/__uplink/<site>.state`.
//
// Bytes:
//   line 1   "TRIBUTARY-UPLINK-STATE 1 <crc32c of the body, 8 hex digits> <body length in bytes>\n"
//   body     UTF-8 JSON: { "producer": { "producerId", "producerEpoch",
//              "partitions": { "<target topic>/<partition>": { "nextSequence", "inFlight": null |
//                { "baseSequence", "recordCount", "firstSourceOffset", "lastSourceOffset" } } } },
//              "checkpoints": { "<source topic>/<partition>": <next source offset to forward> } }
//
// Crash policy: each save replaces the file atomically (write `.tmp`, fsync, rename, fsync the
// directory), so after a power cut it holds the previous or the new state, never a mix. A file
// whose header, length or CRC does not match is not trusted: the link starts with no producer
// id and no checkpoints, logs why, and the read-back of every target partition decides where
// each source partition resumes (exactly-once does not rest on this file; it makes restarts
// cheaper and keeps the producer id, so a copy of a batch still on its way is deduplicated).
//
// Saves are coalesced: a save requested while one is being written is folded into the next
// write (one fsync for every partition that asked meanwhile), and resolves once a write that
// started after the request has finished.
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { crc32c } from '../core/index.js';
import { readFileOrNull, writeFileAtomic } from '../log/io.js';
import { emptyProducerState, type ProducerState } from '../kafka/client/producer.js';

export interface LinkState {
  producer: ProducerState;
  checkpoints: Record<string, number>;
}

const MAGIC = 'TRIBUTARY-UPLINK-STATE';
const VERSION = 1;

export function encodeLinkState(state: LinkState): Buffer {
  const body = Buffer.from(JSON.stringify(state), 'utf8');
  const crc = crc32c(body).toString(16).padStart(8, '0');
  return Buffer.concat([Buffer.from(`${MAGIC} ${VERSION} ${crc} ${body.length}\n`, 'utf8'), body]);
}

/** The state, or the reason the bytes are not trusted. */
export function decodeLinkState(bytes: Buffer): LinkState | string {
  const nl = bytes.indexOf(10);
  if (nl < 0) return 'no header line';
  const [magic, version, crc, length] = bytes.toString('utf8', 0, nl).split(' ');
  if (magic !== MAGIC) return 'not an uplink state file';
  if (Number(version) !== VERSION) return `version ${version}, this build reads ${VERSION}`;
  const body = bytes.subarray(nl + 1);
  if (body.length !== Number(length)) return `body is ${body.length} bytes, the header says ${length}`;
  if (crc32c(body).toString(16).padStart(8, '0') !== crc) return 'CRC mismatch';
  try {
    const s = JSON.parse(body.toString('utf8')) as LinkState;
    if (typeof s.producer?.producerId !== 'number' || typeof s.checkpoints !== 'object' || s.checkpoints === null) return 'fields missing';
    return s;
  } catch (err) {
    return `body does not parse: ${(err as Error).message}`;
  }
}

export class LinkStateFile {
  private writing: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  saves = 0;

  private constructor(
    readonly path: string,
    readonly state: LinkState,
  ) {}

  /** Opens (or starts) the state of the link named `site` under `dataDir`; `onDistrust` hears why a file was not used. */
  static async open(dataDir: string, site: string, onDistrust: (why: string) => void): Promise<LinkStateFile> {
    const dir = join(dataDir, '__uplink');
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${site}.state`);
    const bytes = await readFileOrNull(path);
    let state: LinkState = { producer: emptyProducerState(), checkpoints: {} };
    if (bytes) {
      const decoded = decodeLinkState(bytes);
      if (typeof decoded === 'string') onDistrust(`${path}: ${decoded}`);
      else state = decoded;
    }
    return new LinkStateFile(path, state);
  }

  /** Persists the current state durably (coalesced with saves requested meanwhile). */
  save(): Promise<void> {
    if (!this.writing) return (this.writing = this.write());
    return (this.next ??= this.writing.then(
      () => this.afterCurrent(),
      () => this.afterCurrent(),
    ));
  }

  private afterCurrent(): Promise<void> {
    this.next = null;
    return (this.writing = this.write());
  }

  private async write(): Promise<void> {
    try {
      await writeFileAtomic(this.path, encodeLinkState(this.state));
      this.saves++;
    } finally {
      if (!this.next) this.writing = null;
    }
  }
}
