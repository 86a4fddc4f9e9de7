/**
 * Bit-level conversions between f32 and the narrow float formats a safetensors file may hold:
 * IEEE binary16 (F16), bfloat16 (BF16) and the 8-bit OCP formats (F8_E4M3 "fn", F8_E5M2, F8_E8M0).
 * Values travel as JS numbers; encodings travel as unsigned integers (u16 or u8).
 *
 * Layouts (sign s, exponent e, mantissa m):
 *   F16      s·e5·m10, bias 15    normal (1 + m/2¹⁰)·2^(e−15), subnormal m·2⁻²⁴, e = 31: Inf / NaN
 *   BF16     s·e8·m7               the top half of an f32: widening is a 16-bit shift, exact
 *   F8_E5M2  s·e5·m2               the top byte of an F16
 *   F8_E4M3  s·e4·m3, bias 7      no Inf; S.1111.111 is NaN; max ±448 (the "fn" variant torch uses)
 *   F8_E8M0  e8                    2^(e−127), e = 255 is NaN (a scale, no sign or mantissa)
 *
 * Non-goals: encoding to the 8-bit formats or to BF16 (keel writes F32, F16 and I32 only), NaN
 * payload preservation through JS numbers (bulk BF16 widening in safetensors.ts keeps the bits).
 */

const scratch = new DataView(new ArrayBuffer(4));

/** The f32 bit pattern of `x` after rounding it to f32. */
export function f32Bits(x: number): number {
  scratch.setFloat32(0, x, true);
  return scratch.getUint32(0, true);
}

/** binary16 bits (0…0xffff) → value. Exact: every f16 is representable in f32. */
export function f16ToF32(bits: number): number {
  if (!Number.isInteger(bits) || bits < 0 || bits > 0xffff) throw new RangeError(`f16ToF32: expected a 16-bit pattern 0…65535, got ${bits}`);
  const sign = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24; // ±0 and subnormals
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits (0…0xffff) → value: the bits are the high half of an f32. */
export function bf16ToF32(bits: number): number {
  if (!Number.isInteger(bits) || bits < 0 || bits > 0xffff) throw new RangeError(`bf16ToF32: expected a 16-bit pattern 0…65535, got ${bits}`);
  scratch.setUint32(0, bits << 16 >>> 0, true);
  return scratch.getFloat32(0, true);
}

/**
 * f32 bit pattern → binary16 bits, rounding to nearest, ties to even. Overflow (|x| ≥ 65520, the
 * midpoint between max 65504 and the next binade) gives ±Inf; NaN stays a quiet NaN.
 */
export function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15; // re-biased exponent
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // f16 subnormal: value = h·2⁻²⁴ with h = (1.m)·2^(exp−127+24) = (mant | 2²³) >> (14 − e)
    if (e < -10) return sign; // below half the smallest subnormal: rounds to ±0
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h; // h may carry into the smallest normal: still the correct encoding
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry may reach 0x7c00 = Inf, as it should
  return sign | h;
}

/** Value → binary16 bits. `x` is first rounded to f32 (the format keel's tensors hold). */
export function f32ToF16(x: number): number {
  if (typeof x !== 'number') throw new TypeError(`f32ToF16: expected a number, got ${typeof x}`);
  return f32BitsToF16(f32Bits(x));
}

/** F8_E4M3 ("fn": no Inf) byte → value. */
export function f8e4m3ToF32(byte: number): number {
  const sign = byte & 0x80 ? -1 : 1;
  const e = (byte >> 3) & 0xf;
  const m = byte & 0x7;
  if (e === 15 && m === 7) return NaN;
  if (e === 0) return sign * m * 2 ** -9;
  return sign * (1 + m / 8) * 2 ** (e - 7);
}

/** F8_E5M2 byte → value: the byte is the top half of an F16. */
export const f8e5m2ToF32 = (byte: number): number => f16ToF32((byte & 0xff) << 8);

/** F8_E8M0 byte → value: a power of two 2^(e−127), 0xff = NaN. */
export const f8e8m0ToF32 = (byte: number): number => ((byte & 0xff) === 0xff ? NaN : 2 ** ((byte & 0xff) - 127));
