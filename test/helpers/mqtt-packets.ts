// Builders for raw MQTT packets, for tests that must send what no well-behaved client would
// (bad lengths, invalid UTF-8, forbidden flags). MQTT 3.1.1 §1.5 (strings), §2.2.3 (remaining length).

/** Two-byte big-endian length. */
export const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);

/** A length-prefixed MQTT string (or raw bytes, to send invalid UTF-8). */
export const str = (s: string | Buffer) => {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  return Buffer.concat([u16(b.length), b]);
};

/** MQTT's variable-length "remaining length" encoding. */
export function varint(n: number): Buffer {
  const out: number[] = [];
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 0x80;
    out.push(d);
  } while (n > 0);
  return Buffer.from(out);
}

/** A whole packet: first byte, remaining length, body. */
export const packet = (byte0: number, body: Buffer) => Buffer.concat([Buffer.from([byte0]), varint(body.length), body]);
