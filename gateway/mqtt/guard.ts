// The connection guard: sits between a connection and aedes' packet parser. It frames the
// byte stream itself, checks every packet against the MQTT 3.1.1 and MQTT 5 rules aedes does
// not enforce (MQTT 5: which property each packet may carry, a single-valued property given
// twice, value ranges — properties.ts), and only then hands the bytes to aedes. It is also where a connection stops being
// read (flow control): publish rate, unacknowledged publishes, bytes not yet appended, and
// bytes queued toward the client are all bounded here.
//
// Where it hooks in: aedes reads `conn.read(null)` and feeds `client._parser.parse(buf)`;
// it reads the next chunk only when every packet of the previous one has been handled
// (`client._parsingBatch` falls to 0). The guard wraps `parse`, and to stop reading it holds
// one extra count on `_parsingBatch` until the reason to wait is gone. Nothing is parsed
// twice: the guard walks fixed headers and the few fields the rules need.
//
// Fixed header (MQTT 3.1.1 §2.2): byte 1 = type << 4 | flags; remaining length = 1–4 bytes,
// 7 bits each, little-endian groups, high bit = "more" (MQTT-2.2.3). The remaining length is
// checked against `packetBytesMax` before the packet is buffered.
import { isUtf8 } from 'node:buffer';
import { ERRORS, type ErrorName } from '../../host/errors/codes.js';
import { MALFORMED, PROTOCOL_ERROR, isPropProblem, parseProperties } from './properties.js';

export const CONNECT = 1;
export const PUBLISH = 3;

/** A broken rule: the connection is closed and the rule named in the log line. */
export interface Violation {
  rule: string;
  message: string;
  /** MQTT 5: the reason code of the DISCONNECT sent before closing (default 0x81 Malformed Packet). */
  reason?: number;
}

/** A CONNECT refused with a CONNACK (return code), then the connection is closed. */
export interface Refusal {
  returnCode: number;
  message: string;
  /** An MQTT 5 CONNECT gets a v5 CONNACK carrying `returnCode` as its reason code. */
  v5?: boolean;
  rule?: string;
}

export interface ConnectInfo {
  protocolLevel: number;
  clientId: string;
  keepaliveSeconds: number;
  clean: boolean;
  /** MQTT 5: the largest Topic Alias the client accepts from the server (0 = none, §3.1.2.11.5). */
  topicAliasMaximum: number;
  /** MQTT 5: unacknowledged QoS 1/2 deliveries the client accepts at once (§3.1.2.11.3). */
  receiveMaximum: number;
  /** MQTT 5: the largest packet the client accepts (0 = no limit, §3.1.2.11.4). */
  maximumPacketSize: number;
}

export interface CheckLimits {
  packetBytesMax: number;
  clientIdBytesMax: number;
  keepaliveMaxSeconds: number;
}

/** MQTT 5 §3.1.2.11.3: Receive Maximum absent = 65,535. */
export const RECEIVE_MAXIMUM_DEFAULT = 65_535;

/** Valid UTF-8 (no surrogates, no overlongs) without U+0000 — MQTT-1.5.3-1/2. */
function utf8Problem(buf: Buffer, start: number, end: number): string | undefined {
  let ascii = true;
  for (let i = start; i < end; i++) {
    const b = buf[i];
    if (b === 0) return 'contains U+0000 (MQTT-1.5.3-2)';
    if (b >= 0x80) ascii = false;
  }
  if (!ascii && !isUtf8(buf.subarray(start, end))) return 'is not well-formed UTF-8 or encodes a surrogate (MQTT-1.5.3-1)';
  return undefined;
}

/** Reads a length-prefixed string field; returns [start, end] or a violation. */
function field(buf: Buffer, pos: number, end: number, name: string): [number, number] | Violation {
  if (pos + 2 > end) return { rule: 'MQTT-1.5.3', message: `${name}: length prefix runs past the packet` };
  const len = buf.readUInt16BE(pos);
  if (pos + 2 + len > end) return { rule: 'MQTT-1.5.3', message: `${name}: ${len} bytes declared, past the end of the packet` };
  return [pos + 2, pos + 2 + len];
}

function isViolation(x: unknown): x is Violation {
  return typeof x === 'object' && x !== null && 'rule' in x;
}

function topicNameProblem(buf: Buffer, s: number, e: number): Violation | undefined {
  if (e === s) return { rule: 'MQTT-4.7.3-1', message: 'PUBLISH topic is empty' };
  for (let i = s; i < e; i++) {
    if (buf[i] === 0x23 || buf[i] === 0x2b) return { rule: 'MQTT-3.3.2-2', message: 'PUBLISH topic contains a wildcard (+ or #)' };
  }
  const u = utf8Problem(buf, s, e);
  if (u) return { rule: u.includes('U+0000') ? 'MQTT-1.5.3-2' : 'MQTT-1.5.3-1', message: `PUBLISH topic ${u}` };
  return undefined;
}

function filterProblem(buf: Buffer, s: number, e: number, what: string): Violation | undefined {
  if (e === s) return { rule: 'MQTT-4.7.3-1', message: `${what} topic filter is empty` };
  const u = utf8Problem(buf, s, e);
  if (u) return { rule: u.includes('U+0000') ? 'MQTT-1.5.3-2' : 'MQTT-1.5.3-1', message: `${what} topic filter ${u}` };
  const f = buf.toString('utf8', s, e).split('/');
  // shared subscriptions: a wildcard in the share name of `$share/{name}/...` is answered with a
  // SUBACK failure by gateway/mqtt/shared-subscriptions.ts, not a disconnect (MQTT-4.8.2-2)
  const shareName = f[0] === '$share' ? 1 : -1;
  for (let i = 0; i < f.length; i++) {
    if (i === shareName) continue;
    if (f[i].includes('#') && (f[i] !== '#' || i !== f.length - 1)) return { rule: 'MQTT-4.7.1-2', message: `${what} filter: '#' must be alone in the last level` };
    if (f[i].includes('+') && f[i] !== '+') return { rule: 'MQTT-4.7.1-3', message: `${what} filter: '+' must occupy a whole level` };
  }
  return undefined;
}

/** Checks a CONNECT body (bytes [s, e) after the fixed header). */
export function checkConnect(buf: Buffer, s: number, e: number, limits: CheckLimits): Violation | Refusal | ConnectInfo {
  const h = readConnectHeader(buf, s, e);
  if ('message' in h) return h;
  const id = readConnectPayload(buf, h, e);
  if (!Array.isArray(id)) return id;
  const { v5, clean, keepaliveSeconds } = h;
  const idBytes = id[1] - id[0];
  // MQTT 5 assigns an id to an empty one whatever Clean Start says (§3.1.3.1)
  if (!v5 && idBytes === 0 && !clean) return { returnCode: 2, message: 'CONNECT with an empty client id must ask for a clean session (MQTT-3.1.3-8)' };
  if (idBytes > limits.clientIdBytesMax) return { returnCode: v5 ? 0x85 : 2, v5, message: `CONNECT client id is ${idBytes} bytes, above clientIdBytesMax ${limits.clientIdBytesMax}` };
  // MQTT 5 is not refused: aedes answers with a Server Keep Alive instead (§3.2.2.3.14)
  if (!v5 && limits.keepaliveMaxSeconds > 0 && (keepaliveSeconds === 0 || keepaliveSeconds > limits.keepaliveMaxSeconds)) {
    return { returnCode: 2, message: `CONNECT keep-alive ${keepaliveSeconds} s outside 1..${limits.keepaliveMaxSeconds} (keepaliveMaxSeconds)` };
  }
  const { level, topicAliasMaximum, receiveMaximum, maximumPacketSize } = h;
  return { protocolLevel: level, clientId: buf.toString('utf8', id[0], id[1]), keepaliveSeconds, clean, topicAliasMaximum, receiveMaximum, maximumPacketSize };
}

/** What a CONNECT's variable header says, and where its payload starts (`pos`). */
interface ConnectHeader {
  level: number;
  v5: boolean;
  keepaliveSeconds: number;
  clean: boolean;
  will: boolean;
  hasUsername: boolean;
  hasPassword: boolean;
  topicAliasMaximum: number;
  receiveMaximum: number;
  maximumPacketSize: number;
  pos: number;
}

/** The CONNECT variable header: protocol name and level, flags, keep-alive, MQTT 5 properties. */
function readConnectHeader(buf: Buffer, s: number, e: number): Violation | Refusal | ConnectHeader {
  const name = field(buf, s, e, 'CONNECT protocol name');
  if (isViolation(name)) return name;
  const protocol = buf.toString('latin1', name[0], name[1]);
  let pos = name[1];
  if (pos + 4 > e) return { rule: 'MQTT-3.1.2', message: 'CONNECT variable header is truncated' };
  const level = buf[pos];
  const flags = buf[pos + 1];
  const keepaliveSeconds = buf.readUInt16BE(pos + 2);
  pos += 4;
  if (protocol !== 'MQTT' && protocol !== 'MQIsdp') return { rule: 'MQTT-3.1.2-1', message: `CONNECT protocol name ${JSON.stringify(protocol)} is neither "MQTT" nor "MQIsdp"` };
  const v5 = protocol === 'MQTT' && level === 5;
  if ((protocol === 'MQTT' && level !== 4 && level !== 5) || (protocol === 'MQIsdp' && level !== 3)) {
    return { returnCode: 1, message: `CONNECT protocol level ${level} for ${protocol} is not supported (MQTT-3.1.2-2)` };
  }
  if (flags & 0x01) return { rule: 'MQTT-3.1.2-3', message: 'CONNECT reserved flag is set' };
  const clean = (flags & 0x02) !== 0;
  const will = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  const hasPassword = (flags & 0x40) !== 0;
  const hasUsername = (flags & 0x80) !== 0;
  if (willQos === 3) return { rule: 'MQTT-3.1.2-14', message: 'CONNECT will QoS is 3' };
  if (!will && willQos !== 0) return { rule: 'MQTT-3.1.2-13', message: 'CONNECT will QoS set without the will flag' };
  if (!will && willRetain) return { rule: 'MQTT-3.1.2-15', message: 'CONNECT will retain set without the will flag' };
  // MQTT 5 allows a password without a user name (§3.1.2.9)
  if (!v5 && hasPassword && !hasUsername) return { rule: 'MQTT-3.1.2-22', message: 'CONNECT has a password but no user name' };
  let topicAliasMaximum = 0;
  let receiveMaximum = RECEIVE_MAXIMUM_DEFAULT;
  let maximumPacketSize = 0;
  if (v5) {
    const props = parseProperties(buf, pos, e, 'connect');
    // a malformed or protocol-breaking CONNECT is answered with a CONNACK carrying the reason (§4.13.1)
    if (isPropProblem(props)) return { returnCode: props.reason, v5: true, rule: props.rule, message: `${props.message} (${props.rule})` };
    topicAliasMaximum = (props.values.topicAliasMaximum as number | undefined) ?? 0;
    receiveMaximum = (props.values.receiveMaximum as number | undefined) ?? RECEIVE_MAXIMUM_DEFAULT;
    maximumPacketSize = (props.values.maximumPacketSize as number | undefined) ?? 0;
    pos += props.bytes;
  }
  return { level, v5, keepaliveSeconds, clean, will, hasUsername, hasPassword, topicAliasMaximum, receiveMaximum, maximumPacketSize, pos };
}

/** The CONNECT payload: client id, will properties, topic and message, user name, password; returns the client id's byte range. */
function readConnectPayload(buf: Buffer, h: ConnectHeader, e: number): Violation | Refusal | [number, number] {
  const { v5, will, hasUsername, hasPassword } = h;
  let pos = h.pos;
  const id = field(buf, pos, e, 'CONNECT client id');
  if (isViolation(id)) return id;
  const idProblem = utf8Problem(buf, id[0], id[1]);
  if (idProblem) return { rule: 'MQTT-3.1.3-4', message: `CONNECT client id ${idProblem}` };
  pos = id[1];
  if (will) {
    if (v5) {
      const wp = parseProperties(buf, pos, e, 'will');
      if (isPropProblem(wp)) return { returnCode: wp.reason, v5: true, rule: wp.rule, message: `will ${wp.message} (${wp.rule})` };
      pos += wp.bytes;
    }
    const wt = field(buf, pos, e, 'CONNECT will topic');
    if (isViolation(wt)) return wt;
    const p = topicNameProblem(buf, wt[0], wt[1]);
    if (p) return { rule: p.rule, message: p.message.replace('PUBLISH topic', 'CONNECT will topic') };
    const wm = field(buf, wt[1], e, 'CONNECT will message');
    if (isViolation(wm)) return wm;
    pos = wm[1];
  }
  if (hasUsername) {
    const u = field(buf, pos, e, 'CONNECT user name');
    if (isViolation(u)) return u;
    const up = utf8Problem(buf, u[0], u[1]);
    if (up) return { rule: 'MQTT-3.1.3-11', message: `CONNECT user name ${up}` };
    pos = u[1];
  }
  if (hasPassword) {
    const pw = field(buf, pos, e, 'CONNECT password');
    if (isViolation(pw)) return pw;
    pos = pw[1];
  }
  if (pos !== e) return { rule: 'MQTT-3.1.3', message: `CONNECT has ${e - pos} bytes after its last field` };
  return id;
}

/** A publish the gateway answers with a refusal instead of handing it to aedes. */
export interface PublishRefusal {
  rule: string;
  message: string;
  /** Row of the error table (host/errors/codes.ts) whose `mqtt` column is the reason code. */
  error: ErrorName;
  /** The reason a PUBACK/PUBREC carries when the row's is not one an acknowledgement may (mqttAckReason). */
  ackReason?: number;
}

export interface PublishInfo {
  qos: number;
  bytes: number;
  /** 0 for QoS 0. */
  packetId: number;
  /** MQTT 5 User Properties in wire order (MQTT-3.3.2-18); undefined when none. */
  user?: Array<[string, string]>;
  refusal?: PublishRefusal;
}

export interface PacketContext {
  /** The connection speaks MQTT 5. */
  v5: boolean;
  topicLevelsMax: number;
}

const ACK_NAMES = ['', '', '', '', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP'];

function propsViolation(r: { rule: string; message: string; reason: number }): Violation {
  return { rule: r.rule, message: r.message, reason: r.reason };
}

/** Checks one non-CONNECT packet from a client. Returns a violation, or what the connection needs of a PUBLISH. */
export function checkPacket(type: number, flags: number, buf: Buffer, s: number, e: number, ctx: PacketContext = { v5: false, topicLevelsMax: 100 }): Violation | PublishInfo | undefined {
  const len = e - s;
  const v5 = ctx.v5;
  switch (type) {
    case PUBLISH:
      return checkPublish(flags, buf, s, e, ctx);
    case 4: // PUBACK
    case 5: // PUBREC
    case 7: // PUBCOMP
    case 6: // PUBREL
      return checkAck(type, flags, buf, s, e, v5);
    case 8: // SUBSCRIBE
      return checkSubscribe(flags, buf, s, e, v5);
    case 10: // UNSUBSCRIBE
      return checkUnsubscribe(flags, buf, s, e, v5);
    case 12: // PINGREQ
      if (flags !== 0 || len !== 0) return { rule: 'MQTT-2.2.2-2', message: 'PINGREQ must have flags 0 and no body' };
      return undefined;
    case 14: // DISCONNECT
      return checkDisconnect(flags, buf, s, e, v5);
    case 15: // AUTH (MQTT 5 only)
      if (!v5) return { rule: 'MQTT-2.2.1', message: 'packet type 15 is not sent by clients' };
      // enhanced authentication is not offered: a CONNECT naming a method is refused with
      // 0x8C, so any AUTH is outside an exchange the server started (MQTT-4.12.0-6)
      return { rule: 'MQTT-4.12.0-6', message: 'AUTH without an authentication exchange', reason: PROTOCOL_ERROR };
    case CONNECT:
      return { rule: 'MQTT-3.1.0-2', message: 'a second CONNECT on one connection', reason: PROTOCOL_ERROR };
    default:
      return { rule: 'MQTT-2.2.1', message: `packet type ${type} is not sent by clients`, reason: MALFORMED };
  }
}

/** PUBLISH: QoS and DUP, topic name, packet id, MQTT 5 properties, topic levels against the limit. */
function checkPublish(flags: number, buf: Buffer, s: number, e: number, ctx: PacketContext): Violation | PublishInfo {
  const len = e - s;
  const v5 = ctx.v5;
  const qos = (flags >> 1) & 0x03;
  if (qos === 3) return { rule: 'MQTT-3.3.1-4', message: 'PUBLISH QoS is 3' };
  if (qos === 0 && flags & 0x08) return { rule: 'MQTT-3.3.1-2', message: 'PUBLISH QoS 0 with DUP set' };
  const t = field(buf, s, e, 'PUBLISH topic');
  if (isViolation(t)) return t;
  let pos = t[1];
  let packetId = 0;
  if (qos > 0) {
    if (pos + 2 > e) return { rule: 'MQTT-2.3.1', message: 'PUBLISH packet identifier missing' };
    packetId = buf.readUInt16BE(pos);
    if (packetId === 0) return { rule: 'MQTT-2.3.1-1', message: `PUBLISH QoS ${qos} with packet identifier 0` };
    pos += 2;
  }
  let user: Array<[string, string]> | undefined;
  let aliased = false;
  if (v5) {
    const props = parseProperties(buf, pos, e, 'publish');
    if (isPropProblem(props)) return propsViolation(props);
    if (props.user.length > 0) user = props.user;
    aliased = props.values.topicAlias !== undefined;
    const rt = props.values.responseTopic as string | undefined;
    if (rt !== undefined && (rt.length === 0 || rt.includes('#') || rt.includes('+'))) {
      return { rule: 'MQTT-3.3.2-14', message: 'PUBLISH Response Topic is empty or has a wildcard', reason: PROTOCOL_ERROR };
    }
  }
  // MQTT 5: an empty topic with a Topic Alias names the aliased topic (§3.3.2.3.4)
  if (!(aliased && t[1] === t[0])) {
    const p = topicNameProblem(buf, t[0], t[1]);
    if (p) return v5 ? { ...p, reason: PROTOCOL_ERROR } : p;
  }
  let levels = 1;
  for (let i = t[0]; i < t[1]; i++) if (buf[i] === 0x2f) levels++;
  const info: PublishInfo = { qos, bytes: len, packetId, user };
  if (levels > ctx.topicLevelsMax) {
    info.refusal = { rule: 'topic-levels-max', message: `PUBLISH topic has ${levels} levels, above topicLevelsMax ${ctx.topicLevelsMax}`, error: 'INVALID_TOPIC_EXCEPTION' };
  }
  return info;
}

/** PUBACK, PUBREC, PUBREL and PUBCOMP: fixed header flags and the body's shape. */
function checkAck(type: number, flags: number, buf: Buffer, s: number, e: number, v5: boolean): Violation | undefined {
  const len = e - s;
  const want = type === 6 ? 2 : 0;
  if (flags !== want) return { rule: type === 6 ? 'MQTT-3.6.1-1' : 'MQTT-2.2.2-2', message: `${ACK_NAMES[type]} fixed header flags are ${flags}, must be ${want}` };
  if (!v5) {
    if (len !== 2) return { rule: 'MQTT-2.2.3', message: `${ACK_NAMES[type]} remaining length is ${len}, must be 2` };
    return undefined;
  }
  // MQTT 5 §3.4.2: packet id, then an optional reason code, then optional properties
  if (len < 2) return { rule: 'MQTT-2.2.3', message: `${ACK_NAMES[type]} remaining length is ${len}, below 2` };
  if (len > 3) {
    const props = parseProperties(buf, s + 3, e, 'ack');
    if (isPropProblem(props)) return propsViolation(props);
    if (s + 3 + props.bytes !== e) return { rule: 'MQTT-2.2.3', message: `${ACK_NAMES[type]} has bytes after its properties`, reason: MALFORMED };
  }
  return undefined;
}

/** SUBSCRIBE: flags, packet id, properties, then each topic filter with its options byte. */
function checkSubscribe(flags: number, buf: Buffer, s: number, e: number, v5: boolean): Violation | undefined {
  const len = e - s;
  if (flags !== 2) return { rule: 'MQTT-3.8.1-1', message: `SUBSCRIBE fixed header flags are ${flags}, must be 2` };
  if (len < 2 || buf.readUInt16BE(s) === 0) return { rule: 'MQTT-2.3.1-1', message: 'SUBSCRIBE packet identifier is 0 or missing' };
  let pos = s + 2;
  if (v5) {
    const props = parseProperties(buf, pos, e, 'subscribe');
    if (isPropProblem(props)) return propsViolation(props);
    pos += props.bytes;
  }
  if (pos === e) return { rule: 'MQTT-3.8.3-3', message: 'SUBSCRIBE has no topic filter' };
  while (pos < e) {
    const f = field(buf, pos, e, 'SUBSCRIBE topic filter');
    if (isViolation(f)) return f;
    const p = filterProblem(buf, f[0], f[1], 'SUBSCRIBE');
    if (p) return p;
    if (f[1] >= e) return { rule: 'MQTT-3.8.3', message: 'SUBSCRIBE topic filter without its QoS byte' };
    const o = buf[f[1]];
    if (!v5) {
      if (o > 2) return { rule: 'MQTT-3.8.3-4', message: `SUBSCRIBE requested QoS byte is ${o}` };
    } else {
      // MQTT 5 §3.8.3.1: bits 0-1 QoS, 2 No Local, 3 Retain As Published, 4-5 Retain Handling, 6-7 reserved
      if ((o & 0x03) === 3) return { rule: 'MQTT-3.8.3-4', message: 'SUBSCRIBE maximum QoS is 3', reason: MALFORMED };
      if (o & 0xc0) return { rule: 'MQTT-3.8.3-5', message: 'SUBSCRIBE options reserved bits are set', reason: MALFORMED };
      if (((o >> 4) & 0x03) === 3) return { rule: 'MQTT-3.8.3-5', message: 'SUBSCRIBE Retain Handling is 3', reason: PROTOCOL_ERROR };
      if (o & 0x04 && buf.toString('utf8', f[0], Math.min(f[1], f[0] + 7)) === '$share/') {
        return { rule: 'MQTT-3.8.3-4', message: 'SUBSCRIBE No Local on a shared subscription', reason: PROTOCOL_ERROR };
      }
    }
    pos = f[1] + 1;
  }
  return undefined;
}

/** UNSUBSCRIBE: flags, packet id, properties, then each topic filter. */
function checkUnsubscribe(flags: number, buf: Buffer, s: number, e: number, v5: boolean): Violation | undefined {
  const len = e - s;
  if (flags !== 2) return { rule: 'MQTT-3.10.1-1', message: `UNSUBSCRIBE fixed header flags are ${flags}, must be 2` };
  if (len < 2 || buf.readUInt16BE(s) === 0) return { rule: 'MQTT-2.3.1-1', message: 'UNSUBSCRIBE packet identifier is 0 or missing' };
  let pos = s + 2;
  if (v5) {
    const props = parseProperties(buf, pos, e, 'unsubscribe');
    if (isPropProblem(props)) return propsViolation(props);
    pos += props.bytes;
  }
  if (pos === e) return { rule: 'MQTT-3.10.3-2', message: 'UNSUBSCRIBE has no topic filter' };
  while (pos < e) {
    const f = field(buf, pos, e, 'UNSUBSCRIBE topic filter');
    if (isViolation(f)) return f;
    const p = filterProblem(buf, f[0], f[1], 'UNSUBSCRIBE');
    if (p) return p;
    pos = f[1];
  }
  return undefined;
}

/** DISCONNECT: flags 0; MQTT 3 has no body, MQTT 5 an optional reason code and properties. */
function checkDisconnect(flags: number, buf: Buffer, s: number, e: number, v5: boolean): Violation | undefined {
  const len = e - s;
  if (flags !== 0) return { rule: 'MQTT-2.2.2-2', message: 'DISCONNECT must have flags 0' };
  if (!v5) {
    if (len !== 0) return { rule: 'MQTT-2.2.2-2', message: 'DISCONNECT must have no body' };
    return undefined;
  }
  // MQTT 5 §3.14.2: optional reason code, then optional properties
  if (len > 1) {
    const props = parseProperties(buf, s + 1, e, 'disconnect');
    if (isPropProblem(props)) return propsViolation(props);
    if (s + 1 + props.bytes !== e) return { rule: 'MQTT-2.2.3', message: 'DISCONNECT has bytes after its properties', reason: MALFORMED };
  }
  return undefined;
}

/** Parses a fixed header at `pos`: [type, flags, remaining length, header bytes], undefined if incomplete, or a violation. */
export function readFixedHeader(buf: Buffer, pos: number, packetBytesMax: number): [number, number, number, number] | Violation | undefined {
  if (pos >= buf.length) return undefined;
  const b = buf[pos];
  let len = 0;
  let mul = 1;
  for (let i = 1; i <= 4; i++) {
    if (pos + i >= buf.length) return undefined;
    const d = buf[pos + i];
    len += (d & 0x7f) * mul;
    if ((d & 0x80) === 0) {
      if (len > packetBytesMax) return { rule: 'packetBytesMax', message: `packet of ${len} bytes announced, above packetBytesMax ${packetBytesMax}`, reason: ERRORS.MESSAGE_TOO_LARGE.mqtt };
      return [b >> 4, b & 0x0f, len, i + 1];
    }
    mul *= 128;
  }
  return { rule: 'MQTT-2.2.3', message: 'remaining length uses more than 4 bytes' };
}
