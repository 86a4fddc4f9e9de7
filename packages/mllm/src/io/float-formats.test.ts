import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32Bits, f32ToF16, f8e4m3ToF32, f8e5m2ToF32, f8e8m0ToF32 } from './float-formats.js';

const bitsOf = (x: number) => f32Bits(x);
const fromBits = (b: number) => new Float32Array(new Uint32Array([b >>> 0]).buffer)[0]!;

/**
 * Independent reference for f32 → f16: find the two f16 neighbours of x among all finite f16
 * values by binary search and pick the nearer, ties to the even encoding.
 */
const positiveF16 = Array.from({ length: 0x7c00 }, (_, b) => f16ToF32(b)); // 0 … 65504, increasing
function referenceF16(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // at or past the midpoint between max and 2¹⁶: Inf (ties to even)
  if (a >= 65504) return sign | 0x7bff;
  let lo = 0;
  let hi = positiveF16.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positiveF16[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - positiveF16[lo]!;
  const dHi = positiveF16[hi]! - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}

describe('f16ToF32', () => {
  it.each([
    [0x0000, 0],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x3c00, 1],
    [0x3555, 0.333251953125],
    [0xc000, -2],
    [0x7bff, 65504], // max
    [0xfbff, -65504],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])('0x%s → %s', (bits, value) => {
    expect(f16ToF32(bits)).toBe(value);
  });

  it('keeps the sign of zero and decodes every NaN pattern as NaN', () => {
    expect(Object.is(f16ToF32(0x8000), -0)).toBe(true);
    expect(Object.is(f16ToF32(0x0000), 0)).toBe(true);
    for (const b of [0x7c01, 0x7e00, 0x7fff, 0xfe00, 0xffff]) expect(f16ToF32(b)).toBeNaN();
  });

  it('rejects values that are not 16-bit patterns', () => {
    for (const bad of [-1, 65536, 1.5, NaN]) expect(() => f16ToF32(bad)).toThrow(/16-bit pattern/);
  });
});

describe('f32ToF16', () => {
  it('inverts f16ToF32 on every finite and infinite f16', () => {
    for (let b = 0; b < 0x10000; b++) {
      if ((b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0) continue; // NaN
      expect(f32ToF16(f16ToF32(b))).toBe(b);
    }
  });

  it('rounds to nearest with ties to even, in normals, subnormals and at overflow', () => {
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie, 0x3c00 even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie, 0x3c01 odd → up
    expect(f32ToF16(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01); // just past the tie
    expect(f32ToF16(2 ** -25)).toBe(0x0000); // half the smallest subnormal: tie → 0
    expect(f32ToF16(2 ** -25 * (1 + 2 ** -20))).toBe(0x0001);
    expect(f32ToF16(3 * 2 ** -25)).toBe(0x0002); // 1.5 ulp: tie between 1 and 2 → 2
    expect(f32ToF16(1023.5 * 2 ** -24)).toBe(0x0400); // subnormal rounds up into the smallest normal
    expect(f32ToF16(2 ** -26)).toBe(0x0000);
    expect(f32ToF16(-1e-10)).toBe(0x8000); // underflow keeps the sign
    expect(f32ToF16(65519)).toBe(0x7bff);
    expect(f32ToF16(65520)).toBe(0x7c00); // the midpoint to the next binade rounds to Inf
    expect(f32ToF16(-1e6)).toBe(0xfc00);
    expect(f32ToF16(-0)).toBe(0x8000);
    expect(f32ToF16(Infinity)).toBe(0x7c00);
    expect(f32ToF16(-Infinity)).toBe(0xfc00);
  });

  it('maps NaN to a quiet NaN', () => {
    const h = f32ToF16(NaN);
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
    expect(f16ToF32(h)).toBeNaN();
    expect(f16ToF32(f32ToF16(fromBits(0x7f800001)))).toBeNaN(); // signalling NaN with a low payload stays NaN
  });

  it('agrees with a brute-force nearest-even search on 20,000 random f32 values', () => {
    let s = 12345;
    const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
    for (let i = 0; i < 20_000; i++) {
      // exponents spread over the f16 range and a little beyond it on both sides
      const exp = 127 - 30 + (next() % 48);
      const b = ((next() & 1) << 31) | (exp << 23) | (next() & 0x7fffff);
      const x = fromBits(b);
      expect(f32ToF16(x), `x = ${x} (bits ${bitsOf(x).toString(16)})`).toBe(referenceF16(x));
    }
  });
});

describe('bf16ToF32 and the 8-bit formats', () => {
  it('decodes bfloat16 edge values', () => {
    expect(bf16ToF32(0x3f80)).toBe(1);
    expect(bf16ToF32(0xc040)).toBe(-3);
    expect(Object.is(bf16ToF32(0x8000), -0)).toBe(true);
    expect(bf16ToF32(0x0001)).toBe(2 ** -133); // smallest subnormal
    expect(bf16ToF32(0x7f7f)).toBe(fromBits(0x7f7f0000)); // max ≈ 3.39e38
    expect(bf16ToF32(0x7f80)).toBe(Infinity);
    expect(bf16ToF32(0xff80)).toBe(-Infinity);
    expect(bf16ToF32(0x7fc0)).toBeNaN();
    expect(() => bf16ToF32(0x10000)).toThrow(/16-bit pattern/);
  });

  it('decodes F8_E4M3 (fn), F8_E5M2 and F8_E8M0 edge values', () => {
    expect(f8e4m3ToF32(0x38)).toBe(1);
    expect(f8e4m3ToF32(0x7e)).toBe(448); // max: no Inf in the fn variant
    expect(f8e4m3ToF32(0x7f)).toBeNaN();
    expect(f8e4m3ToF32(0x01)).toBe(2 ** -9);
    expect(Object.is(f8e4m3ToF32(0x80), -0)).toBe(true);
    expect(f8e5m2ToF32(0x3c)).toBe(1);
    expect(f8e5m2ToF32(0x7b)).toBe(57344);
    expect(f8e5m2ToF32(0xfc)).toBe(-Infinity);
    expect(f8e8m0ToF32(127)).toBe(1);
    expect(f8e8m0ToF32(0)).toBe(2 ** -127);
    expect(f8e8m0ToF32(255)).toBeNaN();
  });
});
