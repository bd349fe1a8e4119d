// What it takes for gateway/mqtt/shared-subscriptions.ts, not aedes, to answer `$share/...`.
//
// aedes 2.0.0-beta.1 refuses every MQTT 5 `$share/` filter itself (lib/handlers/subscribe.js,
// `doSubscribe`: SUBACK 0x9E before the authorizeSubscribe hook runs, on a live SUBSCRIBE and
// on a session restore alike), says `sharedSubscriptionAvailable: false` in every MQTT 5
// CONNACK (lib/handlers/connect.js), closes the connection when its topic check fails (a
// wildcard in the share name, which MQTT 5 answers with SUBACK 0x8F, MQTT-4.8.2-2), and turns
// every refusal of the hook into 0x87 (v5) / 0x80. Two devices get around that:
//
// - placeholders: before aedes sees a SUBSCRIBE (a parser listener ahead of its own) and when
//   a persistent session's subscriptions are restored, each `$share/...` filter is renamed to
//   `\u0000share/<n>` — a valid filter no client can send (U+0000 is refused in topics,
//   MQTT-1.5.3-2) — and the authorizeSubscribe hook gets the real filter back with
//   `revealShare`. A granted filter gets its real name back on the subscription object, so
//   aedes keeps an inert `$share/...` entry (which a persistent session stores and restores);
//   a refused one keeps the placeholder, which the gateway's persistence never stores.
// - packet rewrites: `onPacketWrite` lets the gateway change, per connection, the CONNACK and
//   SUBACK objects aedes hands to mqtt-packet's `writeToStream` (aedes 2 lib/write.js looks
//   the function up on the module object at every write): sharedSubscriptionAvailable, and
//   the reason codes of refused shared filters.
import mqttPacket from 'mqtt-packet';

const PLACEHOLDER_PREFIX = '\u0000share/';

/** Real `$share/...` filter of each renamed subscription object. */
const originals = new WeakMap<object, string>();
let placeholderCounter = 0;

/** Renames a `$share/...` subscription to a placeholder (see the header); others are left alone. */
export function hideShare(sub: { topic: string }): void {
  if (!sub.topic.startsWith('$share/')) return;
  originals.set(sub, sub.topic);
  placeholderCounter = placeholderCounter >= 0x7fffffff ? 1 : placeholderCounter + 1;
  sub.topic = `${PLACEHOLDER_PREFIX}${placeholderCounter}`;
}

/** The real filter of a renamed subscription, or undefined for any other. */
export function revealShare(sub: object): string | undefined {
  return originals.get(sub);
}

/** A placeholder filter (never stored, never read from the log). */
export function isHiddenShare(topic: string): boolean {
  return topic.startsWith(PLACEHOLDER_PREFIX);
}

export interface WrittenPacket {
  cmd: string;
  messageId?: number;
  granted?: number[];
  properties?: Record<string, unknown>;
}

type Rewrite = (packet: WrittenPacket) => void;
type WriteToStream = (packet: WrittenPacket, stream: object, opts?: object) => boolean;

/** Rewrites by destination stream (a connection's Duplex): gone with the connection. */
const rewrites = new WeakMap<object, Rewrite>();
let installed = false;

/**
 * Calls `rewrite` with each packet aedes is about to write to `stream`. Installed once per
 * process; streams without a rewrite (other gateways, other brokers) pass untouched.
 */
export function onPacketWrite(stream: object, rewrite: Rewrite): void {
  if (!installed) {
    installed = true;
    const mod = mqttPacket as unknown as { writeToStream: WriteToStream & { cacheNumbers?: boolean } };
    const original = mod.writeToStream;
    const wrapped: WriteToStream = (packet, s, opts) => {
      rewrites.get(s)?.(packet);
      return original(packet, s, opts);
    };
    // mqtt-packet's own switch lives on the function (writeToStream.js)
    Object.defineProperty(wrapped, 'cacheNumbers', {
      get: () => original.cacheNumbers,
      set: (v: boolean) => {
        original.cacheNumbers = v;
      },
    });
    mod.writeToStream = wrapped;
  }
  rewrites.set(stream, rewrite);
}
