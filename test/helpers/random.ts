/** Seeded randomness for tests that ask an oracle about many generated cases at once. */

/** A deterministic generator of numbers in [0, 1) (xorshift32), so a failure names a case that comes back. */
export function seededRandom(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}
