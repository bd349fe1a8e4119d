// A seeded pseudo-random source for tests (xorshift32): the same seed gives the same sequence, so
// a failing seed replays exactly. Not for anything that needs unpredictability.

/** Numbers in [0, 1) from `seed` (0 is taken as 1: xorshift never leaves 0). */
export function seededRandom(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}
