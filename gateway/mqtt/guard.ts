// The connection guard: sits between a connection and aedes' packet parser. It frames the
// byte stream itself, checks every packet against the MQTT 3.1.1 rules aedes 1.2 does not
// enforce, and only then hands the bytes to aedes. It is also where a connection stops being
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

export const CONNECT = 1;
export const PUBLISH = 3;

/** A broken rule: the connection is closed and the rule named in the log line. */
export interface Violation {
  rule: string;
  message: string;
}

/** A CONNECT refused with a CONNACK (return code), then the connection is closed. */
export interface Refusal {
  returnCode: number;
  message: string;
  /** MQTT 5 CONNECTs get a v5 CONNACK with reason 0x84 (Unsupported Protocol Version). */
  v5?: boolean;
}

export interface ConnectInfo {
  protocolLevel: number;
  clientId: string;
  keepaliveSeconds: number;
  clean: boolean;
}

export interface CheckLimits {
  packetBytesMax: number;
  clientIdBytesMax: number;
  keepaliveMaxSeconds: number;
}

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
  if (protocol === 'MQTT' && level === 5) return { returnCode: 0x84, v5: true, message: 'MQTT 5 is not spoken yet: CONNECT refused with reason 0x84 (Unsupported Protocol Version)' };
  if ((protocol === 'MQTT' && level !== 4) || (protocol === 'MQIsdp' && level !== 3)) {
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
  if (hasPassword && !hasUsername) return { rule: 'MQTT-3.1.2-22', message: 'CONNECT has a password but no user name' };

  const id = field(buf, pos, e, 'CONNECT client id');
  if (isViolation(id)) return id;
  const idProblem = utf8Problem(buf, id[0], id[1]);
  if (idProblem) return { rule: 'MQTT-3.1.3-4', message: `CONNECT client id ${idProblem}` };
  pos = id[1];
  if (will) {
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
  const idBytes = id[1] - id[0];
  if (idBytes === 0 && !clean) return { returnCode: 2, message: 'CONNECT with an empty client id must ask for a clean session (MQTT-3.1.3-8)' };
  if (idBytes > limits.clientIdBytesMax) return { returnCode: 2, message: `CONNECT client id is ${idBytes} bytes, above clientIdBytesMax ${limits.clientIdBytesMax}` };
  if (limits.keepaliveMaxSeconds > 0 && (keepaliveSeconds === 0 || keepaliveSeconds > limits.keepaliveMaxSeconds)) {
    return { returnCode: 2, message: `CONNECT keep-alive ${keepaliveSeconds} s outside 1..${limits.keepaliveMaxSeconds} (keepaliveMaxSeconds)` };
  }
  return { protocolLevel: level, clientId: buf.toString('utf8', id[0], id[1]), keepaliveSeconds, clean };
}

export interface PublishInfo {
  qos: number;
  bytes: number;
}

/** Checks one non-CONNECT packet from a client. Returns a violation, or the publish's QoS for PUBLISH. */
export function checkPacket(type: number, flags: number, buf: Buffer, s: number, e: number): Violation | PublishInfo | undefined {
  const len = e - s;
  switch (type) {
    case PUBLISH: {
      const qos = (flags >> 1) & 0x03;
      if (qos === 3) return { rule: 'MQTT-3.3.1-4', message: 'PUBLISH QoS is 3' };
      if (qos === 0 && flags & 0x08) return { rule: 'MQTT-3.3.1-2', message: 'PUBLISH QoS 0 with DUP set' };
      const t = field(buf, s, e, 'PUBLISH topic');
      if (isViolation(t)) return t;
      const p = topicNameProblem(buf, t[0], t[1]);
      if (p) return p;
      if (qos > 0) {
        if (t[1] + 2 > e) return { rule: 'MQTT-2.3.1', message: 'PUBLISH packet identifier missing' };
        if (buf.readUInt16BE(t[1]) === 0) return { rule: 'MQTT-2.3.1-1', message: `PUBLISH QoS ${qos} with packet identifier 0` };
      }
      return { qos, bytes: len };
    }
    case 4: // PUBACK
    case 5: // PUBREC
    case 7: // PUBCOMP
    case 6: {
      // PUBREL
      const want = type === 6 ? 2 : 0;
      const names = ['', '', '', '', 'PUBACK', 'PUBREC', 'PUBREL', 'PUBCOMP'];
      if (flags !== want) return { rule: type === 6 ? 'MQTT-3.6.1-1' : 'MQTT-2.2.2-2', message: `${names[type]} fixed header flags are ${flags}, must be ${want}` };
      if (len !== 2) return { rule: 'MQTT-2.2.3', message: `${names[type]} remaining length is ${len}, must be 2` };
      return undefined;
    }
    case 8: {
      // SUBSCRIBE
      if (flags !== 2) return { rule: 'MQTT-3.8.1-1', message: `SUBSCRIBE fixed header flags are ${flags}, must be 2` };
      if (len < 2 || buf.readUInt16BE(s) === 0) return { rule: 'MQTT-2.3.1-1', message: 'SUBSCRIBE packet identifier is 0 or missing' };
      let pos = s + 2;
      if (pos === e) return { rule: 'MQTT-3.8.3-3', message: 'SUBSCRIBE has no topic filter' };
      while (pos < e) {
        const f = field(buf, pos, e, 'SUBSCRIBE topic filter');
        if (isViolation(f)) return f;
        const p = filterProblem(buf, f[0], f[1], 'SUBSCRIBE');
        if (p) return p;
        if (f[1] >= e) return { rule: 'MQTT-3.8.3', message: 'SUBSCRIBE topic filter without its QoS byte' };
        const o = buf[f[1]];
        if (o > 2) return { rule: 'MQTT-3.8.3-4', message: `SUBSCRIBE requested QoS byte is ${o}` };
        pos = f[1] + 1;
      }
      return undefined;
    }
    case 10: {
      // UNSUBSCRIBE
      if (flags !== 2) return { rule: 'MQTT-3.10.1-1', message: `UNSUBSCRIBE fixed header flags are ${flags}, must be 2` };
      if (len < 2 || buf.readUInt16BE(s) === 0) return { rule: 'MQTT-2.3.1-1', message: 'UNSUBSCRIBE packet identifier is 0 or missing' };
      let pos = s + 2;
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
    case 12: // PINGREQ
    case 14: // DISCONNECT
      if (flags !== 0 || len !== 0) return { rule: 'MQTT-2.2.2-2', message: `${type === 12 ? 'PINGREQ' : 'DISCONNECT'} must have flags 0 and no body` };
      return undefined;
    case CONNECT:
      return { rule: 'MQTT-3.1.0-2', message: 'a second CONNECT on one connection' };
    default:
      return { rule: 'MQTT-2.2.1', message: `packet type ${type} is not sent by clients` };
  }
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
      if (len > packetBytesMax) return { rule: 'packetBytesMax', message: `packet of ${len} bytes announced, above packetBytesMax ${packetBytesMax}` };
      return [b >> 4, b & 0x0f, len, i + 1];
    }
    mul *= 128;
  }
  return { rule: 'MQTT-2.2.3', message: 'remaining length uses more than 4 bytes' };
}
