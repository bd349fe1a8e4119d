// MQTT 5 properties read from the raw bytes, before aedes' parser (mqtt-packet 9.0.2) sees
// them: which property may appear in which packet, a single-valued property given twice
// (a Protocol Error, MQTT 5 §2.2.2.2), and the User Properties in the order they were sent
// (MQTT-3.3.2-18: the server must keep their order; mqtt-packet folds them into an object
// keyed by name, which loses the order between different names).
//
// Byte layout (MQTT 5 §2.2.2): Property Length as a Variable Byte Integer (1–4 bytes, 7 bits
// each, least significant group first, high bit = "more"), then properties, each an
// identifier (a Variable Byte Integer; every defined one fits one byte) followed by a value
// whose type the identifier fixes: Byte, Two Byte Integer, Four Byte Integer, Variable Byte
// Integer, UTF-8 string (2-byte length + bytes), Binary Data (2-byte length + bytes), or a
// UTF-8 String Pair (two strings).
import { isUtf8 } from 'node:buffer';
import { ERRORS } from '../../host/errors/codes.js';

/** Reason codes from the error table's `mqtt` column (MQTT 5 §2.4). */
export const MALFORMED = ERRORS.CORRUPT_MESSAGE.mqtt; // 0x81 Malformed Packet
export const PROTOCOL_ERROR = ERRORS.INVALID_REQUEST.mqtt; // 0x82 Protocol Error

type PropType = 'byte' | 'u16' | 'u32' | 'varint' | 'string' | 'binary' | 'pair';

/** Packet kinds that carry properties; `will` = the Will Properties inside CONNECT. */
export type PropPacket = 'connect' | 'will' | 'publish' | 'ack' | 'subscribe' | 'unsubscribe' | 'disconnect' | 'auth';

interface PropSpec {
  name: string;
  type: PropType;
  /** Where a client may send it (MQTT 5 §2.2.2.2, the table of properties). */
  in: PropPacket[];
  /** May appear more than once (User Property; Subscription Identifier only server → client). */
  multi?: boolean;
}

export const PROPERTIES: Record<number, PropSpec> = {
  0x01: { name: 'payloadFormatIndicator', type: 'byte', in: ['publish', 'will'] },
  0x02: { name: 'messageExpiryInterval', type: 'u32', in: ['publish', 'will'] },
  0x03: { name: 'contentType', type: 'string', in: ['publish', 'will'] },
  0x08: { name: 'responseTopic', type: 'string', in: ['publish', 'will'] },
  0x09: { name: 'correlationData', type: 'binary', in: ['publish', 'will'] },
  // a client may put it in SUBSCRIBE only; in a PUBLISH from a client it is a Protocol Error (MQTT-3.3.4-6)
  0x0b: { name: 'subscriptionIdentifier', type: 'varint', in: ['subscribe'] },
  0x11: { name: 'sessionExpiryInterval', type: 'u32', in: ['connect', 'disconnect'] },
  0x15: { name: 'authenticationMethod', type: 'string', in: ['connect', 'auth'] },
  0x16: { name: 'authenticationData', type: 'binary', in: ['connect', 'auth'] },
  0x17: { name: 'requestProblemInformation', type: 'byte', in: ['connect'] },
  0x18: { name: 'willDelayInterval', type: 'u32', in: ['will'] },
  0x19: { name: 'requestResponseInformation', type: 'byte', in: ['connect'] },
  0x1c: { name: 'serverReference', type: 'string', in: ['disconnect'] },
  0x1f: { name: 'reasonString', type: 'string', in: ['ack', 'disconnect', 'auth'] },
  0x21: { name: 'receiveMaximum', type: 'u16', in: ['connect'] },
  0x22: { name: 'topicAliasMaximum', type: 'u16', in: ['connect'] },
  0x23: { name: 'topicAlias', type: 'u16', in: ['publish'] },
  0x26: { name: 'userProperty', type: 'pair', in: ['connect', 'will', 'publish', 'ack', 'subscribe', 'unsubscribe', 'disconnect', 'auth'], multi: true },
  0x27: { name: 'maximumPacketSize', type: 'u32', in: ['connect'] },
};

/** A property problem: the rule broken and the MQTT 5 reason code that answers it. */
export interface PropProblem {
  rule: string;
  message: string;
  /** MALFORMED (0x81) or PROTOCOL_ERROR (0x82). */
  reason: number;
}

export interface ParsedProps {
  /** Bytes of the whole property section (length prefix included). */
  bytes: number;
  /** Single-valued properties by name (numbers, strings, or Buffers for binary). */
  values: Record<string, number | string | Buffer>;
  /** User Properties in wire order. */
  user: Array<[string, string]>;
}

/** Reads a Variable Byte Integer at `pos` (MQTT 5 §1.5.5): [value, bytes] or undefined when malformed or truncated. */
export function readVarint(buf: Buffer, pos: number, end: number): [number, number] | undefined {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 4; i++) {
    if (pos + i >= end) return undefined;
    const d = buf[pos + i];
    value += (d & 0x7f) * mul;
    if ((d & 0x80) === 0) return [value, i + 1];
    mul *= 128;
  }
  return undefined;
}

function malformed(message: string): PropProblem {
  return { rule: 'MQTT-2.2.2', message, reason: MALFORMED };
}

/** Reads a 2-byte-length-prefixed field; [start, end] or undefined when it runs past `end`. */
function lengthPrefixed(buf: Buffer, pos: number, end: number): [number, number] | undefined {
  if (pos + 2 > end) return undefined;
  const len = buf.readUInt16BE(pos);
  if (pos + 2 + len > end) return undefined;
  return [pos + 2, pos + 2 + len];
}

function utf8Ok(buf: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (buf[i] === 0) return false;
  return isUtf8(buf.subarray(s, e));
}

/**
 * Parses and checks the property section at `pos` for packet kind `kind`. Never throws;
 * returns the problem when a property is unknown, not allowed there, repeated, truncated,
 * or out of its range.
 */
export function parseProperties(buf: Buffer, pos: number, end: number, kind: PropPacket): ParsedProps | PropProblem {
  const len = readVarint(buf, pos, end);
  if (!len) return malformed(`${kind} property length is malformed or truncated`);
  const start = pos + len[1];
  const stop = start + len[0];
  if (stop > end) return malformed(`${kind} properties (${len[0]} bytes) run past the packet`);
  const values: Record<string, number | string | Buffer> = {};
  const user: Array<[string, string]> = [];
  let p = start;
  while (p < stop) {
    const id = buf[p++];
    const spec = PROPERTIES[id];
    if (!spec) return malformed(`${kind} has unknown property identifier 0x${id.toString(16)}`);
    if (!spec.in.includes(kind)) {
      const rule = kind === 'publish' && id === 0x0b ? 'MQTT-3.3.4-6' : 'MQTT-2.2.2-2';
      return { rule, message: `${kind} may not carry property ${spec.name}`, reason: PROTOCOL_ERROR };
    }
    if (!spec.multi && spec.name in values) return { rule: 'MQTT-2.2.2-2', message: `${kind} carries ${spec.name} twice`, reason: PROTOCOL_ERROR };
    let v: number | string | Buffer;
    switch (spec.type) {
      case 'byte':
        if (p + 1 > stop) return malformed(`${kind} ${spec.name} truncated`);
        v = buf[p];
        p += 1;
        break;
      case 'u16':
        if (p + 2 > stop) return malformed(`${kind} ${spec.name} truncated`);
        v = buf.readUInt16BE(p);
        p += 2;
        break;
      case 'u32':
        if (p + 4 > stop) return malformed(`${kind} ${spec.name} truncated`);
        v = buf.readUInt32BE(p);
        p += 4;
        break;
      case 'varint': {
        const r = readVarint(buf, p, stop);
        if (!r) return malformed(`${kind} ${spec.name} malformed`);
        v = r[0];
        p += r[1];
        break;
      }
      case 'string':
      case 'binary': {
        const f = lengthPrefixed(buf, p, stop);
        if (!f) return malformed(`${kind} ${spec.name} runs past the properties`);
        if (spec.type === 'string') {
          if (!utf8Ok(buf, f[0], f[1])) return malformed(`${kind} ${spec.name} is not well-formed UTF-8 (MQTT-1.5.4-1)`);
          v = buf.toString('utf8', f[0], f[1]);
        } else v = Buffer.from(buf.subarray(f[0], f[1]));
        p = f[1];
        break;
      }
      case 'pair': {
        const k = lengthPrefixed(buf, p, stop);
        const val = k && lengthPrefixed(buf, k[1], stop);
        if (!k || !val) return malformed(`${kind} user property runs past the properties`);
        if (!utf8Ok(buf, k[0], k[1]) || !utf8Ok(buf, val[0], val[1])) return malformed(`${kind} user property is not well-formed UTF-8 (MQTT-1.5.4-1)`);
        user.push([buf.toString('utf8', k[0], k[1]), buf.toString('utf8', val[0], val[1])]);
        p = val[1];
        continue;
      }
    }
    const bad = rangeProblem(spec.name, v as number);
    if (bad) return { rule: bad[0], message: `${kind} ${spec.name} ${bad[1]}`, reason: PROTOCOL_ERROR };
    values[spec.name] = v;
  }
  return { bytes: stop - pos, values, user };
}

/** Value ranges the spec fixes (a violation is a Protocol Error). */
function rangeProblem(name: string, v: number): [string, string] | undefined {
  switch (name) {
    case 'payloadFormatIndicator':
      return v > 1 ? ['MQTT-2.2.2-2', `is ${v}, must be 0 or 1`] : undefined;
    case 'requestProblemInformation':
    case 'requestResponseInformation':
      return v > 1 ? ['MQTT-3.1.2-28', `is ${v}, must be 0 or 1`] : undefined;
    case 'receiveMaximum':
      return v === 0 ? ['MQTT-3.1.2-22', 'is 0'] : undefined;
    case 'maximumPacketSize':
      return v === 0 ? ['MQTT-3.1.2-24', 'is 0'] : undefined;
    case 'topicAlias':
      return v === 0 ? ['MQTT-3.3.2-8', 'is 0'] : undefined;
    case 'subscriptionIdentifier':
      return v === 0 ? ['MQTT-3.8.2-1', 'is 0'] : undefined;
    default:
      return undefined;
  }
}

export function isPropProblem(x: ParsedProps | PropProblem): x is PropProblem {
  return 'reason' in x;
}

/** User Properties as mqtt-packet writes them in order: one single-key object per pair. */
export function orderedUserProperties(pairs: Array<[string, string]>): Array<Record<string, string>> {
  return pairs.map(([k, v]) => ({ [k]: v }));
}
