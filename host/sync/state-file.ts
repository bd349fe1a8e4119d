// The uplink's link state as bytes: the value of its record in the internal table
// `__uplink_state` (host/sync/state-table.ts), and the format of the state file
// `<dataDir>/__uplink/<site>.state` that earlier versions kept (read once, to migrate it).
//
// Bytes:
//   line 1   "TRIBUTARY-UPLINK-STATE 1 <crc32c of the body, 8 hex digits> <body length in bytes>\n"
//   body     UTF-8 JSON: { "producer": { "producerId", "producerEpoch",
//              "partitions": { "<target topic>/<partition>": { "nextSequence", "inFlight": [
//                { "producerId", "baseSequence", "recordCount", "firstSourceOffset",
//                "lastSourceOffset" }, ... ] (older versions: null or one object) } } },
//              "checkpoints": { "<source topic>/<partition>" or "downlink:<central topic>/<partition>":
//                <next offset> },
//              "transactional": { "<transactional id>": { "producerId", "producerEpoch" } } }
//              (transactional: transactions mode's producers, absent before it was kept; a restarted
//              link re-initialises each with this id and epoch, KIP-360, fencing what it left open)
//
// Crash policy: bytes whose header, length or CRC does not match are not trusted: the link starts
// with no producer id and no checkpoints, logs why, and the read-back of every target partition
// decides where each source partition resumes (exactly-once does not rest on this state; it makes
// restarts cheaper and keeps the producer id, so a copy of a batch still on its way is deduplicated).
import { crc32c } from '../core/index.js';
import { type ProducerState } from '../kafka/client/producer.js';

export interface LinkState {
  producer: ProducerState;
  checkpoints: Record<string, number>;
  /** Transactions mode: per transactional id the producer id and epoch last given out (optional: older states lack it). */
  transactional?: Record<string, { producerId: number; producerEpoch: number }>;
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
