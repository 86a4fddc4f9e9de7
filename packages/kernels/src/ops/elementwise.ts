/**
 * Elementwise kernels, part 1: unary ops (incl. scalar-operand ops like x + s, x ^ s), f32 ↔ f16
 * casts, a plain copy, and the shape machinery (NumPy broadcasting, dimension collapsing) shared with
 * elementwise-binary.ts and elementwise-backward.ts.
 *
 * Every unary op is a WGSL function `f(x, s)` (s = the scalar operand, ignored by ops without one)
 * drawn from a table keyed by the closed `UnaryOp` union, so adding an op without its WGSL is a
 * compile error. Same-shape kernels read and write `array<vec4<f32>>`: the last vec4 may be partial,
 * and its lanes past n compute on (and write) the padding of pooled buffers, whose capacity is always
 * a multiple of 16 bytes; readers never look past n.
 *
 * Numerics: tanh, sigmoid, silu and both gelus are written to be stable for any |x| (no exp
 * overflow, no 0·∞), NaN propagates through every op (checked on bits: lavapipe folds `x != x` to
 * false), erf uses Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7).
 *
 * Non-goals: integer dtypes, in-place variants, strided (non-contiguous) inputs.
 *
 * Dimension legend: N elements, C channels (last axis).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

export const ELEMENTWISE_WG = 256;
/** The most dimensions a broadcast kernel handles after collapsing contiguous dimensions. */
export const ELEMENTWISE_MAX_RANK = 6;

// ------------------------------------------------------------------ WGSL helper library

/** WGSL helpers shared by every elementwise kernel (prefixed `ew_`). */
export const ELEMENTWISE_WGSL_LIB = /* wgsl */ `
fn ew_isnan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
// A quiet NaN; the runtime operand keeps the compiler from const-folding (WGSL forbids NaN constants).
fn ew_nan(like: f32) -> f32 { return bitcast<f32>(0x7fc00000u | (bitcast<u32>(like) & 0u)); }
fn ew_copysign(m: f32, s: f32) -> f32 {
  return bitcast<f32>((bitcast<u32>(m) & 0x7fffffffu) | (bitcast<u32>(s) & 0x80000000u));
}
// 1 / (1 + e^-x) from e = e^-|x| <= 1: never overflows, keeps relative accuracy in both tails.
fn ew_sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  let r = 1.0 / (1.0 + e);
  return select(e * r, r, x >= 0.0);
}
// sigma'(x) = sigma(x)(1 - sigma(x)) = e / (1 + e)^2 with e = e^-|x| (no cancellation).
fn ew_sigmoid_grad(x: f32) -> f32 {
  let e = exp(-abs(x));
  let r = 1.0 / (1.0 + e);
  return e * r * r;
}
// x * g where g -> 0 as x -> -inf: the limit 0 instead of -inf * 0 = NaN.
fn ew_times_gate(x: f32, g: f32) -> f32 { return select(x * g, 0.0, g == 0.0); }
// tanh: odd Taylor series (to x^11) for |x| < 0.4, else (1 - e)/(1 + e) with e = e^-2|x| <= 0.45.
fn ew_tanh(x: f32) -> f32 {
  let z = x * x;
  let p = x * (1.0 + z * (-0.33333333333 + z * (0.13333333333 + z * (-0.05396825397
    + z * (0.02186948854 + z * (-0.00886323552))))));
  let e = exp(-2.0 * abs(x));
  let q = ew_copysign((1.0 - e) / (1.0 + e), x);
  return select(q, p, abs(x) < 0.4);
}
// tanh'(x) = sech^2(x) = 4e / (1 + e)^2 with e = e^-2|x|.
fn ew_tanh_grad(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  let r = 1.0 / (1.0 + e);
  return 4.0 * e * r * r;
}
// erfc(a) for a >= 0 (Abramowitz–Stegun 7.1.26); relative accuracy holds in the tail.
fn ew_erfc_pos(a: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return p * exp(-a * a);
}
// Phi(x), the standard normal CDF: 0.5 erfc(-x / sqrt 2), without 1 + erf cancellation for x < 0.
fn ew_phi(x: f32) -> f32 {
  let c = ew_erfc_pos(abs(x) * 0.70710678118654752);
  return select(0.5 * c, 1.0 - 0.5 * c, x >= 0.0);
}
// gelu (tanh approximation) = 0.5 x (1 + tanh(z)) = x sigma(2z), z = sqrt(2/pi)(x + 0.044715 x^3).
fn ew_gelu_tanh(x: f32) -> f32 {
  let z = 0.79788456080286536 * (x + 0.044715 * x * x * x);
  return ew_times_gate(x, ew_sigmoid(2.0 * z));
}
// d/dx x sigma(2z) = sigma(2z) + x * 2 sigma'(2z) * z',  z' = sqrt(2/pi)(1 + 3 * 0.044715 x^2).
fn ew_gelu_tanh_grad(x: f32) -> f32 {
  let z = 0.79788456080286536 * (x + 0.044715 * x * x * x);
  let q = ew_sigmoid_grad(2.0 * z);
  let dz = 0.79788456080286536 * (1.0 + 0.134145 * x * x);
  return ew_sigmoid(2.0 * z) + select(2.0 * x * q * dz, 0.0, q == 0.0);
}
fn ew_gelu_erf(x: f32) -> f32 { return ew_times_gate(x, ew_phi(x)); }
// d/dx x Phi(x) = Phi(x) + x phi(x),  phi(x) = e^(-x^2/2) / sqrt(2 pi).
fn ew_gelu_erf_grad(x: f32) -> f32 {
  let d = 0.39894228040143268 * exp(-0.5 * x * x);
  return ew_phi(x) + select(x * d, 0.0, d == 0.0);
}
fn ew_silu_grad(x: f32) -> f32 {
  // sigma + x sigma (1 - sigma)
  return ew_sigmoid(x) + ew_times_gate(x, ew_sigmoid_grad(x));
}
// x^y with NumPy semantics for x < 0 (integer y: signed result; otherwise NaN), x^0 = 1^y = 1.
fn ew_pow(x: f32, y: f32) -> f32 {
  let ax = abs(x);
  let inf = bitcast<f32>(0x7f800000u | (bitcast<u32>(x) & 0u));
  let m = select(pow(ax, y), inf, ax == 0.0 && y < 0.0); // 0^-y = inf (pow() gives 0 on lavapipe)
  let yint = floor(y) == y;
  let odd = yint && floor(0.5 * y) != 0.5 * y;
  var r = select(m, -m, (bitcast<u32>(x) & 0x80000000u) != 0u && odd); // (-0)^-1 = -inf
  r = select(r, ew_nan(x), x < 0.0 && !yint);
  r = select(r, ew_nan(x), ew_isnan(x) || ew_isnan(y));
  return select(r, 1.0, y == 0.0 || x == 1.0);
}
fn ew_max(a: f32, b: f32) -> f32 { return select(max(a, b), a + b, ew_isnan(a) || ew_isnan(b)); }
fn ew_min(a: f32, b: f32) -> f32 { return select(min(a, b), a + b, ew_isnan(a) || ew_isnan(b)); }
fn ew_sign(x: f32) -> f32 { return select(select(0.0, 1.0, x > 0.0), -1.0, x < 0.0); }
`;

// ------------------------------------------------------------------ unary op table

/** Every unary op; the `*_scalar` ops take their second operand `s` from `options.scalar`. */
export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'relu' | 'gelu' | 'gelu_erf' | 'silu'
  | 'sigmoid' | 'tanh'
  | 'add_scalar' | 'sub_scalar' | 'rsub_scalar' | 'mul_scalar' | 'div_scalar' | 'rdiv_scalar' | 'pow_scalar';

/** f(x, s) as a WGSL f32 expression. A missing op is a type error. */
export const UNARY_WGSL: { readonly [K in UnaryOp]: string } = {
  neg: '-x',
  exp: 'exp(x)',
  log: 'select(log(x), ew_nan(x), x < 0.0)',
  sqrt: 'select(sqrt(x), ew_nan(x), x < 0.0)',
  rsqrt: 'select(1.0 / sqrt(x), ew_nan(x), x < 0.0)',
  abs: 'abs(x)',
  relu: 'select(x, 0.0, x < 0.0)', // NaN stays NaN
  gelu: 'ew_gelu_tanh(x)',
  gelu_erf: 'ew_gelu_erf(x)',
  silu: 'ew_times_gate(x, ew_sigmoid(x))',
  sigmoid: 'ew_sigmoid(x)',
  tanh: 'ew_tanh(x)',
  add_scalar: 'x + s',
  sub_scalar: 'x - s',
  rsub_scalar: 's - x',
  mul_scalar: 'x * s',
  div_scalar: 'x / s',
  rdiv_scalar: 's / x',
  pow_scalar: 'ew_pow(x, s)',
};

export const UNARY_OPS = Object.keys(UNARY_WGSL) as UnaryOp[];
const SCALAR_OPS: ReadonlySet<UnaryOp> = new Set(UNARY_OPS.filter((op) => op.endsWith('_scalar')));

export function unaryNeedsScalar(op: UnaryOp): boolean {
  return SCALAR_OPS.has(op);
}

// ------------------------------------------------------------------ same-shape vec4 map kernels

/**
 * Body of a same-shape kernel over vec4s: out[i] = f(in_0[i], ..., s) lane by lane, where `fn`
 * is a WGSL function of (inputs..., s). Invocation i handles elements 4i .. 4i + 3; the uniform n4 is
 * ceil(n / 4).
 */
export function mapVec4Wgsl(inputs: readonly string[], fn: string, withScalar: boolean): string {
  const lane = (c: string) => `${fn}(${[...inputs.map((x) => `${x}v.${c}`), ...(withScalar ? ['u.s'] : [])].join(', ')})`;
  return /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i >= u.n4) { return; }
  ${inputs.map((x) => `let ${x}v = ${x}[i];`).join(' ')}
  out[i] = vec4<f32>(${['x', 'y', 'z', 'w'].map(lane).join(', ')});
}`;
}

export const unaryKernel = defineKernel({
  name: 'elementwise_unary',
  bindings: [
    { name: 'x', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'out', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
  ],
  uniforms: [
    { name: 'n4', type: 'u32' },
    { name: 's', type: 'f32' },
  ],
  workgroupSize: () => [ELEMENTWISE_WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n4 / ELEMENTWISE_WG)),
  key: (p: { op: UnaryOp }) => p.op,
  wgsl: (p) => `${ELEMENTWISE_WGSL_LIB}
fn ew_op(x: f32, s: f32) -> f32 { return ${UNARY_WGSL[p.op]}; }
${mapVec4Wgsl(['x'], 'ew_op', true)}`,
});

// ------------------------------------------------------------------ host helpers (shared)

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
export const fmtShape = (shape: readonly number[]): string => `[${shape.join(',')}]`;

/** Elements a buffer must hold: `n` if given (checked), else its whole size. */
export function elementCount(what: string, buf: GpuBuffer, n: number | undefined, bytesPer = 4): number {
  const count = n ?? Math.floor(buf.size / bytesPer);
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`${what}: invalid element count ${count}`);
  if (count * bytesPer > buf.size) {
    throw new RangeError(`${what}: ${count} elements exceed the ${buf.size}-byte buffer`);
  }
  return count;
}

/** Throws unless a buffer holds a tensor of `shape`. */
export function checkBuffer(what: string, name: string, buf: GpuBuffer, shape: readonly number[]): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`${what}: invalid shape ${fmtShape(shape)} for ${name}`);
  }
  if (numel(shape) * 4 > buf.size) {
    throw new RangeError(`${what}: ${name} of shape ${fmtShape(shape)} needs ${numel(shape) * 4} bytes, buffer has ${buf.size}`);
  }
}

/** vec4 kernels bind whole buffers; the pool rounds capacities to multiples of 16 bytes. */
export function assertVec4(what: string, ...bufs: GpuBuffer[]): void {
  for (const b of bufs) {
    if (b.capacity % 16 !== 0) throw new Error(`${what}: buffer capacity ${b.capacity} is not a multiple of 16 bytes`);
  }
}

/**
 * NumPy broadcasting: shapes align on the right; each dimension pair must be equal or contain a 1.
 * `what` names the op in the error, e.g. `binary add: cannot broadcast shapes [2,3] and [4]`.
 */
export function broadcastShapes(what: string, ...shapes: readonly (readonly number[])[]): number[] {
  for (const s of shapes) {
    if (s.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${what}: invalid shape ${fmtShape(s)}`);
  }
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) {
        const list = shapes.map(fmtShape);
        const joined = list.length === 2 ? list.join(' and ') : `${list.slice(0, -1).join(', ')} and ${list.at(-1)}`;
        throw new Error(`${what}: cannot broadcast shapes ${joined}`);
      }
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** Element strides of a contiguous `shape` seen through broadcasting to `outShape` (0 = broadcast). */
export function broadcastStrides(shape: readonly number[], outShape: readonly number[]): number[] {
  const off = outShape.length - shape.length;
  const st = new Array<number>(outShape.length).fill(0);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    st[off + i] = shape[i] === 1 ? 0 : acc;
    acc *= shape[i]!;
  }
  return st;
}

/** Dimensions and per-input strides, innermost first, after dropping 1s and merging contiguous runs. */
export interface Collapsed {
  dims: number[];
  strides: number[][];
}

/** Merges dimension i into i + 1 whenever every input walks them as one contiguous run. */
export function collapseDims(outShape: readonly number[], strides: readonly (readonly number[])[]): Collapsed {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  outShape.forEach((d, i) => {
    if (d === 1) return;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, k) => st[k]![last] === s[i]! * d)) {
      dims[last]! *= d;
      strides.forEach((s, k) => (st[k]![last] = s[i]!));
    } else {
      dims.push(d);
      strides.forEach((s, k) => st[k]!.push(s[i]!));
    }
  });
  if (dims.length === 0) return { dims: [1], strides: strides.map(() => [0]) };
  return { dims: dims.reverse(), strides: st.map((s) => s.reverse()) };
}

// ------------------------------------------------------------------ unary forward

export interface UnaryOptions {
  /** Elements (default: the whole buffer). */
  n?: number;
  /** The scalar operand of the `*_scalar` ops. */
  scalar?: number;
}

export function scalarOperand(what: string, op: UnaryOp, scalar: number | undefined): number {
  if (!unaryNeedsScalar(op)) return 0;
  if (typeof scalar !== 'number') throw new Error(`${what}: op '${op}' needs options.scalar`);
  return scalar;
}

/** out = f(x) elementwise. Saves nothing: `unaryBackward` takes x. */
export function unaryForward(rt: Runtime, op: UnaryOp, x: GpuBuffer, options: UnaryOptions = {}): GpuBuffer {
  const what = `unary ${op}`;
  if (!(op in UNARY_WGSL)) throw new Error(`unary: unknown op '${String(op)}'`);
  const s = scalarOperand(what, op, options.scalar);
  const n = elementCount(what, x, options.n);
  const out = rt.createBuffer(n * 4);
  if (n === 0) return out;
  assertVec4(what, x, out);
  rt.dispatch(unaryKernel, { op }, { buffers: { x, out }, uniforms: { n4: Math.ceil(n / 4), s } });
  return out;
}

// ------------------------------------------------------------------ copy and casts

/** A new buffer holding the first n f32 elements of x (a DMA copy, no kernel). */
export function elementwiseCopy(rt: Runtime, x: GpuBuffer, options: { n?: number } = {}): GpuBuffer {
  const n = elementCount('copy', x, options.n);
  const out = rt.createBuffer(n * 4);
  rt.copy(x, out, n * 4);
  return out;
}

export type CastDirection = 'f32_to_f16' | 'f16_to_f32';

const castKey = (p: { dir: CastDirection }): string => p.dir;

/** f32 → f16, two elements per invocation (one vec2<f16> word). */
export const castF32ToF16Kernel = defineKernel({
  name: 'elementwise_cast_f32_f16',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (N,)
    { name: 'out', type: 'array<vec2<f16>>', access: 'read_write' }, // (ceil(N/2),)
  ],
  uniforms: [{ name: 'n', type: 'u32' }],
  workgroupSize: () => [ELEMENTWISE_WG],
  dispatch: (_p, u) => grid1d(Math.ceil(Math.ceil(u.n / 2) / ELEMENTWISE_WG)),
  key: castKey,
  enables: () => ['f16'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = gid.x + gid.y * nwg.x * WG_X; // word j holds elements 2j, 2j + 1
  let i = 2u * j;
  if (i >= u.n) { return; }
  let b = select(0.0, x[min(i + 1u, u.n - 1u)], i + 1u < u.n);
  out[j] = vec2<f16>(f16(x[i]), f16(b));
}`,
});

/** f16 → f32, two elements per invocation. */
export const castF16ToF32Kernel = defineKernel({
  name: 'elementwise_cast_f16_f32',
  bindings: [
    { name: 'x', type: 'array<vec2<f16>>', access: 'read' }, // (ceil(N/2),)
    { name: 'out', type: 'array<f32>', access: 'read_write' }, // (N,)
  ],
  uniforms: [{ name: 'n', type: 'u32' }],
  workgroupSize: () => [ELEMENTWISE_WG],
  dispatch: (_p, u) => grid1d(Math.ceil(Math.ceil(u.n / 2) / ELEMENTWISE_WG)),
  key: castKey,
  enables: () => ['f16'],
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = gid.x + gid.y * nwg.x * WG_X;
  let i = 2u * j;
  if (i >= u.n) { return; }
  let h = x[j];
  out[i] = f32(h.x);
  if (i + 1u < u.n) { out[i + 1u] = f32(h.y); }
}`,
});

function cast(rt: Runtime, dir: CastDirection, x: GpuBuffer, n: number): GpuBuffer {
  if (!rt.has('shader-f16')) {
    throw new Error(`cast ${dir}: this device lacks the 'shader-f16' feature, so f16 tensors are unavailable`);
  }
  const outBytes = dir === 'f32_to_f16' ? Math.ceil(n / 2) * 4 : n * 4;
  const out = rt.createBuffer(outBytes);
  if (n === 0) return out;
  if (dir === 'f32_to_f16') rt.dispatch(castF32ToF16Kernel, { dir }, { buffers: { x, out }, uniforms: { n } });
  else rt.dispatch(castF16ToF32Kernel, { dir }, { buffers: { x, out }, uniforms: { n } });
  return out;
}

/**
 * f32 → f16 (round to nearest even; |x| > 65504 becomes ±Inf). The result packs two halves per
 * 32-bit word: ceil(n / 2) * 4 bytes, element k at byte 2k. Needs `shader-f16`.
 */
export function castF32ToF16(rt: Runtime, x: GpuBuffer, options: { n?: number } = {}): GpuBuffer {
  return cast(rt, 'f32_to_f16', x, elementCount('cast f32_to_f16', x, options.n));
}

/** f16 (packed, element k at byte 2k) → f32. `n` defaults to every half in the buffer. */
export function castF16ToF32(rt: Runtime, x: GpuBuffer, options: { n?: number } = {}): GpuBuffer {
  return cast(rt, 'f16_to_f32', x, elementCount('cast f16_to_f32', x, options.n, 2));
}
