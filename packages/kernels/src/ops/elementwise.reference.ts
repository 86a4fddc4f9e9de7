/**
 * Float64 CPU references for the elementwise kernels (tests and bench validation). Semantics follow
 * NumPy / PyTorch: NaN propagates, pow of a negative base needs an integer exponent, comparisons
 * give 1/0, maximum/minimum split the gradient on ties, and x·g with g → 0 (silu, gelu at -∞) takes
 * the limit 0.
 */
import type { UnaryOp } from './elementwise.js';
import type { BinaryOp } from './elementwise-binary.js';
import type { DiffBinaryOp } from './elementwise-backward.js';

const SQRT2 = Math.SQRT2;
const K_TANH = Math.sqrt(2 / Math.PI);

/** erf for |z| < 3 from the all-positive series 2/√π e^{-z²} Σ 2^n z^{2n+1} / (2n+1)!!. */
function erfSeries(z: number): number {
  let term = z;
  let sum = z;
  for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
    term *= (2 * z * z) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z) * sum;
}

/** erfc(z) for z ≥ 0, relative accuracy ~1e-12 (continued fraction in the tail). */
export function refErfcPos(z: number): number {
  if (z < 3) return 1 - erfSeries(z);
  let t = z;
  for (let k = 120; k >= 1; k--) t = z + k / 2 / t;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / t;
}

export function refErf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  const v = a < 3 ? erfSeries(a) : 1 - refErfcPos(a);
  return x < 0 ? -v : v;
}

/** Standard normal CDF. */
export function refPhi(x: number): number {
  const c = refErfcPos(Math.abs(x) / SQRT2);
  return x >= 0 ? 1 - 0.5 * c : 0.5 * c;
}

const gate = (x: number, g: number): number => (g === 0 ? 0 : x * g);

export function refSigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

const sigmoidGrad = (x: number): number => {
  const e = Math.exp(-Math.abs(x));
  return e / ((1 + e) * (1 + e));
};

export function refGeluTanh(x: number): number {
  return gate(x, refSigmoid(2 * K_TANH * (x + 0.044715 * x ** 3)));
}

export function refGeluErf(x: number): number {
  return gate(x, refPhi(x));
}

/** NumPy power. */
export function refPow(x: number, y: number): number {
  if (y === 0 || x === 1) return 1;
  if (Number.isNaN(x) || Number.isNaN(y)) return NaN;
  if (x < 0 && !Number.isInteger(y) && Number.isFinite(y)) return NaN;
  return x ** y;
}

export function refUnary(op: UnaryOp, x: number, s = 0): number {
  switch (op) {
    case 'neg': return -x;
    case 'exp': return Math.exp(x);
    case 'log': return Math.log(x);
    case 'sqrt': return Math.sqrt(x);
    case 'rsqrt': return 1 / Math.sqrt(x);
    case 'abs': return Math.abs(x);
    case 'relu': return x < 0 ? 0 : x;
    case 'gelu': return refGeluTanh(x);
    case 'gelu_erf': return refGeluErf(x);
    case 'silu': return gate(x, refSigmoid(x));
    case 'sigmoid': return refSigmoid(x);
    case 'tanh': return Math.tanh(x);
    case 'add_scalar': return x + s;
    case 'sub_scalar': return x - s;
    case 'rsub_scalar': return s - x;
    case 'mul_scalar': return x * s;
    case 'div_scalar': return x / s;
    case 'rdiv_scalar': return s / x;
    case 'pow_scalar': return refPow(x, s);
  }
}

/** f'(x), derived by hand (checked against numericGrad in the tests). */
export function refUnaryGrad(op: UnaryOp, x: number, s = 0): number {
  switch (op) {
    case 'neg': return -1;
    case 'exp': return Math.exp(x);
    case 'log': return 1 / x;
    case 'sqrt': return 0.5 / Math.sqrt(x);
    case 'rsqrt': return -0.5 * x ** -1.5;
    case 'abs': return Math.sign(x);
    case 'relu': return x > 0 ? 1 : 0;
    case 'gelu': {
      const z = K_TANH * (x + 0.044715 * x ** 3);
      const dz = K_TANH * (1 + 3 * 0.044715 * x * x);
      return refSigmoid(2 * z) + 2 * x * sigmoidGrad(2 * z) * dz;
    }
    case 'gelu_erf': return refPhi(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
    case 'silu': return refSigmoid(x) + x * sigmoidGrad(x);
    case 'sigmoid': return sigmoidGrad(x);
    case 'tanh': return 1 - Math.tanh(x) ** 2;
    case 'add_scalar': case 'sub_scalar': return 1;
    case 'rsub_scalar': return -1;
    case 'mul_scalar': return s;
    case 'div_scalar': return 1 / s;
    case 'rdiv_scalar': return -s / (x * x);
    case 'pow_scalar': return s === 0 ? 0 : s * refPow(x, s - 1);
  }
}

const isNaNEither = (a: number, b: number) => Number.isNaN(a) || Number.isNaN(b);

export function refBinary(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add': return a + b;
    case 'sub': return a - b;
    case 'mul': return a * b;
    case 'div': return a / b;
    case 'pow': return refPow(a, b);
    case 'maximum': return isNaNEither(a, b) ? NaN : Math.max(a, b);
    case 'minimum': return isNaNEither(a, b) ? NaN : Math.min(a, b);
    case 'eq': return a === b ? 1 : 0;
    case 'ne': return a === b ? 0 : 1;
    case 'lt': return a < b ? 1 : 0;
    case 'le': return a <= b ? 1 : 0;
    case 'gt': return a > b ? 1 : 0;
    case 'ge': return a >= b ? 1 : 0;
  }
}

/** (∂f/∂a, ∂f/∂b). */
export function refBinaryGrad(op: DiffBinaryOp, a: number, b: number): [number, number] {
  switch (op) {
    case 'add': return [1, 1];
    case 'sub': return [1, -1];
    case 'mul': return [b, a];
    case 'div': return [1 / b, -a / (b * b)];
    case 'pow': return [b === 0 ? 0 : b * refPow(a, b - 1), a === 0 && b >= 0 ? 0 : refPow(a, b) * Math.log(a)];
    case 'maximum': { const w = a > b ? 1 : a === b ? 0.5 : 0; return [w, 1 - w]; }
    case 'minimum': { const w = a < b ? 1 : a === b ? 0.5 : 0; return [w, 1 - w]; }
  }
}

/** Flat index into a contiguous `shape` of the output coordinate `coord` under broadcasting. */
function bcastIndex(coord: readonly number[], shape: readonly number[]): number {
  const off = coord.length - shape.length;
  let idx = 0;
  for (let i = 0; i < shape.length; i++) idx = idx * shape[i]! + (shape[i] === 1 ? 0 : coord[off + i]!);
  return idx;
}

/** Calls fn(outIndex, inputIndices) for every element of outShape. */
export function forEachBroadcast(
  outShape: readonly number[],
  shapes: readonly (readonly number[])[],
  fn: (i: number, idx: number[]) => void,
): void {
  const n = outShape.reduce((x, y) => x * y, 1);
  const coord = outShape.map(() => 0);
  for (let i = 0; i < n; i++) {
    fn(i, shapes.map((s) => bcastIndex(coord, s)));
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++coord[d]! < outShape[d]!) break;
      coord[d] = 0;
    }
  }
}

/** Sum of x (fromShape) down to toShape, in float64. */
export function refReduceToShape(x: ArrayLike<number>, fromShape: readonly number[], toShape: readonly number[]): Float64Array {
  const out = new Float64Array(toShape.reduce((a, b) => a * b, 1));
  forEachBroadcast(fromShape, [toShape], (i, [j]) => (out[j!]! += x[i]!));
  return out;
}

/** The f16 value nearest to x (round to nearest even), as a number. */
export function refF16Round(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Infinity;
  const e = Math.max(Math.floor(Math.log2(a)), -14);
  const q = 2 ** (e - 10); // spacing of f16 values at this exponent (subnormals: 2^-24)
  const m = a / q;
  let r = Math.floor(m);
  const frac = m - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r += 1;
  return Math.sign(x) * r * q;
}

/** Decodes f16 bits. */
export function refF16FromBits(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}
