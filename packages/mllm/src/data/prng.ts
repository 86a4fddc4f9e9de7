/**
 * Seeded pseudo-random numbers for the data generators. Every sample is a pure function of
 * (task, split, seed, index): `streamSeed` hashes those parts into a 32-bit seed and `Rng` expands
 * it with SplitMix32, so sample i never depends on how many samples were asked for before it and
 * `samples(split, 20)` starts with `samples(split, 10)`.
 *
 * Non-goals: cryptographic quality, streams longer than a few thousand draws per sample.
 */

/** FNV-1a over the UTF-16 code units of `text`, 32-bit. Used for seeds and for split-by-hash. */
export function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A 32-bit seed from a list of parts, joined with U+0001 (which the callers' names never contain). */
export function streamSeed(...parts: readonly (string | number)[]): number {
  for (const p of parts) {
    if (typeof p === 'number' && !Number.isInteger(p)) throw new Error(`streamSeed: numeric parts must be integers, got ${p}`);
  }
  return fnv1a(parts.join('\u0001'));
}

/** SplitMix32: a 32-bit state advanced by a Weyl constant, output through a strong mixer. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`Rng: seed must be an integer, got ${seed}`);
    this.state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi < lo) {
      throw new Error(`Rng.int: need integers lo ≤ hi, got lo=${lo}, hi=${hi}`);
    }
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** One element, uniformly. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick: cannot pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A new array in uniformly random order (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}
