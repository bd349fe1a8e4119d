// xxHash32 (Yann Collet's non-cryptographic hash, as specified in the xxHash repository's
// doc/xxhash_spec.md). The LZ4 frame format uses it for the header checksum (second byte of
// xxh32 over the frame descriptor, seed 0 — the fix Kafka adopted in KIP-57), for optional
// block checksums and for the optional content checksum.
//
// Layout: input is read as little-endian u32 lanes; 16-byte stripes feed four accumulators,
// then the tail is consumed 4 bytes, then 1 byte at a time, then the avalanche mixes the bits.

const PRIME1: u32 = 0x9e3779b1;
const PRIME2: u32 = 0x85ebca77;
const PRIME3: u32 = 0xc2b2ae3d;
const PRIME4: u32 = 0x27d4eb2f;
const PRIME5: u32 = 0x165667b1;

// @ts-ignore: decorator
@inline function round(acc: u32, lane: u32): u32 {
  return rotl<u32>(acc + lane * PRIME2, 13) * PRIME1;
}

/** xxh32 of `len` bytes at `ptr` with `seed`. */
export function xxhash32(ptr: usize, len: usize, seed: u32): u32 {
  let p = ptr;
  const end = ptr + len;
  let h: u32;
  if (len >= 16) {
    let v1 = seed + PRIME1 + PRIME2;
    let v2 = seed + PRIME2;
    let v3 = seed;
    let v4 = seed - PRIME1;
    const stripeEnd = end - 16;
    do {
      v1 = round(v1, load<u32>(p));
      v2 = round(v2, load<u32>(p, 4));
      v3 = round(v3, load<u32>(p, 8));
      v4 = round(v4, load<u32>(p, 12));
      p += 16;
    } while (p <= stripeEnd);
    h = rotl<u32>(v1, 1) + rotl<u32>(v2, 7) + rotl<u32>(v3, 12) + rotl<u32>(v4, 18);
  } else {
    h = seed + PRIME5;
  }
  h += <u32>len;
  while (p + 4 <= end) {
    h = rotl<u32>(h + load<u32>(p) * PRIME3, 17) * PRIME4;
    p += 4;
  }
  while (p < end) {
    h = rotl<u32>(h + <u32>load<u8>(p) * PRIME5, 11) * PRIME1;
    p++;
  }
  h ^= h >> 15;
  h *= PRIME2;
  h ^= h >> 13;
  h *= PRIME3;
  h ^= h >> 16;
  return h;
}
