// MQTT 5 publish properties ↔ record headers. A record appended from an MQTT 5 publish
// carries its properties as headers, so a Kafka consumer sees them and a record read back
// (reverse delivery, another gateway) becomes an MQTT 5 publish with the same properties.
//
// Mapping (Kafka headers are an ordered list that allows repeated keys, which is what User
// Properties need — MQTT-3.3.2-18 keeps their order):
//   User Property (name, value)     → `mqtt.user.<name>` = value, one header per pair, in wire order
//   Content Type                    → `mqtt.contentType`   (UTF-8)
//   Response Topic                  → `mqtt.responseTopic` (UTF-8)
//   Correlation Data                → `mqtt.correlationData` (bytes as sent)
//   Payload Format Indicator = 1    → `mqtt.payloadFormat` = `utf8` (absent for 0, unspecified bytes)
//   Message Expiry Interval (s)     → `mqtt.expiresAtMs` = receipt time + interval, decimal ms since
//                                     the epoch; a delivery after it is dropped, one before it
//                                     carries the remaining whole seconds (MQTT-3.3.2-6)
import type { RecordInput } from '../../host/broker/api.js';

export const USER_PREFIX = 'mqtt.user.';
export const CONTENT_TYPE_HEADER = 'mqtt.contentType';
export const RESPONSE_TOPIC_HEADER = 'mqtt.responseTopic';
export const CORRELATION_HEADER = 'mqtt.correlationData';
export const PAYLOAD_FORMAT_HEADER = 'mqtt.payloadFormat';
export const EXPIRES_AT_HEADER = 'mqtt.expiresAtMs';

/** User Properties in order, whichever shape they have (the guard's ordered list or mqtt-packet's object). */
export function userPairs(user: unknown): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (Array.isArray(user)) {
    for (const o of user) for (const k of Object.keys(o as object)) out.push([k, String((o as Record<string, unknown>)[k])]);
  } else if (user && typeof user === 'object') {
    for (const [k, v] of Object.entries(user)) {
      if (Array.isArray(v)) for (const x of v) out.push([k, String(x)]);
      else out.push([k, String(v)]);
    }
  }
  return out;
}

/** Appends the headers for a publish's MQTT 5 properties. */
export function propertiesToHeaders(props: Record<string, unknown>, headers: NonNullable<RecordInput['headers']>, nowMs = Date.now()): void {
  for (const [k, v] of userPairs(props.userProperties)) headers.push({ key: USER_PREFIX + k, value: Buffer.from(v) });
  if (typeof props.contentType === 'string') headers.push({ key: CONTENT_TYPE_HEADER, value: Buffer.from(props.contentType) });
  if (typeof props.responseTopic === 'string') headers.push({ key: RESPONSE_TOPIC_HEADER, value: Buffer.from(props.responseTopic) });
  if (Buffer.isBuffer(props.correlationData)) headers.push({ key: CORRELATION_HEADER, value: props.correlationData });
  if (props.payloadFormatIndicator === true || props.payloadFormatIndicator === 1) headers.push({ key: PAYLOAD_FORMAT_HEADER, value: Buffer.from('utf8') });
  if (typeof props.messageExpiryInterval === 'number' && props.messageExpiryInterval > 0) {
    headers.push({ key: EXPIRES_AT_HEADER, value: Buffer.from(String(nowMs + props.messageExpiryInterval * 1000)) });
  }
}

export interface DeliveryProps {
  properties?: Record<string, unknown>;
  /** Absolute expiry (ms since the epoch), as aedes keeps it on queued packets. */
  messageExpiry?: number;
}

const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

/** The MQTT 5 properties of a record's headers (undefined values when it has none). */
export function headersToProperties(headers: Array<{ key: string; value: Uint8Array | null }>): DeliveryProps {
  let props: Record<string, unknown> | undefined;
  let messageExpiry: number | undefined;
  const user: Array<Record<string, string>> = [];
  for (const h of headers) {
    if (h.value === null || !h.key.startsWith('mqtt.')) continue;
    if (h.key.startsWith(USER_PREFIX)) user.push({ [h.key.slice(USER_PREFIX.length)]: text(h.value) });
    else if (h.key === CONTENT_TYPE_HEADER) (props ??= {}).contentType = text(h.value);
    else if (h.key === RESPONSE_TOPIC_HEADER) (props ??= {}).responseTopic = text(h.value);
    else if (h.key === CORRELATION_HEADER) (props ??= {}).correlationData = Buffer.from(h.value);
    else if (h.key === PAYLOAD_FORMAT_HEADER) (props ??= {}).payloadFormatIndicator = true;
    else if (h.key === EXPIRES_AT_HEADER) {
      const at = Number(text(h.value));
      if (Number.isFinite(at)) messageExpiry = at;
    }
  }
  // written as one single-key object per pair, mqtt-packet keeps this order on the wire
  if (user.length > 0) (props ??= {}).userProperties = user;
  return { properties: props, messageExpiry };
}
