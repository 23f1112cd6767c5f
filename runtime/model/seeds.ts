// Derives independent 32-bit seeds from a base seed and a few integers (a murmur3-style mix), so every
// parameter, step and token row gets its own reproducible stream whatever the sharding.

function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function mixSeed(seed: number, ...parts: number[]): number {
  let h = mix32((seed >>> 0) ^ 0x5bd1e995);
  for (const p of parts) h = mix32((h ^ mix32((p >>> 0) + 0x9e3779b9)) >>> 0);
  return h;
}
