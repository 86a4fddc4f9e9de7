/**
 * Softmax and log-softmax over the last axis, forward and backward, with an optional causal mask.
 *
 * Dimension legend: a tensor of shape (..., C) is R = N / C rows of C columns. With `causal`, the
 * shape is (..., T, T) and row r keeps columns c ≤ r mod T; the others are masked (softmax 0,
 * log-softmax -Inf, gradient 0).
 *
 * Math (stable: the row max M is subtracted before exp):
 *   S = Σ_c exp(x_c − M),  softmax y_c = exp(x_c − M) / S,  log-softmax y_c = x_c − M − log S.
 *   softmax backward:      dx_c = y_c · (dy_c − Σ_k dy_k y_k)
 *   log-softmax backward:  dx_c = dy_c − exp(y_c) · Σ_k dy_k          (sums over unmasked k)
 * The forwards save only their output y; the backwards take y and dy (not x).
 *
 * A (TX, TY) workgroup handles TY rows with TX invocations each (see rowShape). Each invocation
 * folds units (vec4 when C % 4 = 0) t, t + TX, ... of its row into a local (max, Σexp) pair, and a
 * tree over the TX invocations merges pairs (m, s) ⊕ (m', s') = (M, s·e^{m−M} + s'·e^{m'−M}): one
 * tree instead of one for the max and one for the sum. The input is read three times (max, sum,
 * output), from cache for rows of ordinary length.
 *
 * Edge values: NaN anywhere in a row → the whole row is NaN; +Inf in a row → NaN row (Inf − Inf);
 * a row whose every unmasked entry is -Inf → NaN row (0/0, as in PyTorch); -Inf entries in an
 * otherwise finite row → probability 0. C = 0 or no rows → empty output, no dispatch.
 *
 * Non-goals: softmax over other axes (transpose first), f16, arbitrary (non-causal) masks.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

export type SoftmaxKind = 'softmax' | 'logSoftmax';

interface Params {
  readonly kind: SoftmaxKind;
  readonly causal: boolean;
  /** Invocations per row (a power of two) and rows per workgroup. */
  readonly tx: number;
  readonly ty: number;
}

const key = (p: Params) => `${p.kind}|${p.causal}|${p.tx}|${p.ty}`;

/**
 * Shared WGSL for a vector width W (1, or 4 when C is a multiple of 4): the element type VT, lane
 * column indices, horizontal max/sum, NaN-propagating max, +Inf from bits (WGSL has no infinite
 * constants), and the row setup (rows beyond the end keep running to the barriers with lim = 0).
 */
function common(p: Params, w: 1 | 4): string {
  const lim = p.causal ? 'min(u.C, row % u.T + 1u)' : 'u.C';
  return /* wgsl */ `
alias VT = ${w === 4 ? 'vec4<f32>' : 'f32'};
alias VU = ${w === 4 ? 'vec4<u32>' : 'u32'};
const W = ${w}u;
var<private> INF_BITS: u32 = 0x7f800000u;
fn inf() -> f32 { return bitcast<f32>(INF_BITS); }
fn isnan_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn maxn(a: f32, b: f32) -> f32 { return select(max(a, b), a + b, isnan_(a) | isnan_(b)); }
// column of each lane of unit q
fn lanes(q: u32) -> VU { return ${w === 4 ? 'vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u)' : 'q'}; }
fn hmax(v: VT) -> f32 { return ${w === 4 ? 'maxn(maxn(v.x, v.y), maxn(v.z, v.w))' : 'v'}; }
fn hsum(v: VT) -> f32 { return ${w === 4 ? '(v.x + v.y) + (v.z + v.w)' : 'v'}; }
struct Row { ok: bool, base: u32, lim: u32, limW: u32, tx: u32, slot: u32, lead: u32 }
fn rowOf(lid: vec3<u32>, g: u32) -> Row {
  let row = g * WG_Y + lid.y;
  let ok = row < u.rows;
  var lim = 0u;
  if (ok) { lim = ${lim}; } // unmasked columns of this row
  return Row(ok, row * (u.C / W), lim, (lim + W - 1u) / W, lid.x, lid.y * WG_X + lid.x, lid.y * WG_X);
}`;
}

// The (max, Σexp) partial of one invocation. A partial whose max is -Inf (or NaN) keeps s = 0: it
// adds nothing, and M carries the NaN. (Holding x in registers instead of re-reading it measured no
// faster on lavapipe, where the row is in cache anyway.)
const streamedPartials = /* wgsl */ `  var m = -inf();
  for (var q = r.tx; q < r.limW; q += WG_X) {
    m = maxn(m, hmax(select(VT(-inf()), x[r.base + q], lanes(q) < VU(r.lim))));
  }
  var s = 0.0;
  if (m > -inf()) {
    for (var q = r.tx; q < r.limW; q += WG_X) {
      s += hsum(exp(select(VT(-inf()), x[r.base + q], lanes(q) < VU(r.lim)) - VT(m)));
    }
  }`;

function streamedOutput(p: Params): string {
  return p.kind === 'softmax'
    ? `  let inv = 1.0 / S;
  for (var q = r.tx; q < u.C / W; q += WG_X) {
    y[r.base + q] = select(VT(0.0), exp(x[r.base + q] - VT(M)) * inv, lanes(q) < VU(r.lim));
  }`
    : `  // (x − M) − log S, not x − (M + log S): the latter loses log S next to a huge M
  let logS = log(S);
  for (var q = r.tx; q < u.C / W; q += WG_X) {
    y[r.base + q] = select(VT(-inf()), (x[r.base + q] - VT(M)) - VT(logS), lanes(q) < VU(r.lim));
  }`;
}

function makeForward(w: 1 | 4) {
  return defineKernel({
    name: w === 4 ? 'softmax_forward_vec4' : 'softmax_forward',
    bindings: [
      { name: 'x', type: w === 4 ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' }, // (R, C)
      { name: 'y', type: w === 4 ? 'array<vec4<f32>>' : 'array<f32>', access: 'read_write' }, // (R, C)
    ],
    uniforms: [
      { name: 'rows', type: 'u32' },
      { name: 'C', type: 'u32' },
      { name: 'T', type: 'u32' }, // causal period (the row count of each (T, T) block)
    ],
    workgroupSize: (p: Params) => [p.tx, p.ty],
    dispatch: (p, u) => grid1d(Math.ceil(u.rows / p.ty)),
    key,
    wgsl: (p) => /* wgsl */ `${common(p, w)}
var<workgroup> shm: array<f32, ${p.tx * p.ty}>;
var<workgroup> shs: array<f32, ${p.tx * p.ty}>;
// s · e^{m − M}, where an empty partial (s = 0, m = -Inf) contributes 0 even when M = -Inf.
fn part(s: f32, m: f32, M: f32) -> f32 { return select(s * exp(m - M), 0.0, s == 0.0); }
@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = wid.x + wid.y * nwg.x;
  if (g * WG_Y >= u.rows) { return; } // uniform across the workgroup
  let r = rowOf(lid, g);
${streamedPartials}
  shm[r.slot] = m;
  shs[r.slot] = s;
  workgroupBarrier();
  for (var h = WG_X / 2u; h > 0u; h = h / 2u) {
    if (r.tx < h) {
      let m1 = shm[r.slot];
      let m2 = shm[r.slot + h];
      let M = maxn(m1, m2);
      shs[r.slot] = part(shs[r.slot], m1, M) + part(shs[r.slot + h], m2, M);
      shm[r.slot] = M;
    }
    workgroupBarrier();
  }
  if (!r.ok) { return; }
  let M = shm[r.lead];
  let S = shs[r.lead];
${streamedOutput(p)}
}`,
  });
}

function makeBackward(w: 1 | 4) {
  const arr = w === 4 ? 'array<vec4<f32>>' : 'array<f32>';
  return defineKernel({
    name: w === 4 ? 'softmax_backward_vec4' : 'softmax_backward',
    bindings: [
      { name: 'y', type: arr, access: 'read' }, // (R, C) forward output
      { name: 'dy', type: arr, access: 'read' }, // (R, C)
      { name: 'dx', type: arr, access: 'read_write' }, // (R, C)
    ],
    uniforms: [
      { name: 'rows', type: 'u32' },
      { name: 'C', type: 'u32' },
      { name: 'T', type: 'u32' },
    ],
    workgroupSize: (p: Params) => [p.tx, p.ty],
    dispatch: (p, u) => grid1d(Math.ceil(u.rows / p.ty)),
    key,
    wgsl: (p) => /* wgsl */ `${common(p, w)}
var<workgroup> sh: array<f32, ${p.tx * p.ty}>;
@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let g = wid.x + wid.y * nwg.x;
  if (g * WG_Y >= u.rows) { return; }
  let r = rowOf(lid, g);
  var acc = 0.0;
  for (var q = r.tx; q < r.limW; q += WG_X) {
    let v = ${p.kind === 'softmax' ? 'dy[r.base + q] * y[r.base + q]' : 'dy[r.base + q]'};
    acc += hsum(select(VT(0.0), v, lanes(q) < VU(r.lim)));
  }
  sh[r.slot] = acc;
  workgroupBarrier();
  for (var h = WG_X / 2u; h > 0u; h = h / 2u) {
    if (r.tx < h) { sh[r.slot] += sh[r.slot + h]; }
    workgroupBarrier();
  }
  if (!r.ok) { return; }
  let S = VT(sh[r.lead]);
  for (var q = r.tx; q < u.C / W; q += WG_X) {
    let yv = y[r.base + q];
    let grad = ${p.kind === 'softmax' ? 'yv * (dy[r.base + q] - S)' : 'dy[r.base + q] - exp(yv) * S'};
    dx[r.base + q] = select(VT(0.0), grad, lanes(q) < VU(r.lim));
  }
}`,
  });
}

export const softmaxForwardKernel = makeForward(1);
export const softmaxForwardVec4Kernel = makeForward(4);
export const softmaxBackwardKernel = makeBackward(1);
export const softmaxBackwardVec4Kernel = makeBackward(4);

export interface SoftmaxOptions {
  /** Mask columns c > (row mod T) of a (..., T, T) tensor (attention scores). Default false. */
  causal?: boolean;
}

/** Validates the shape; returns rows, C and the causal period T. */
function rowsOf(rt: Runtime, op: string, shape: readonly number[], bufs: readonly GpuBuffer[], causal: boolean) {
  const s = `[${shape.join(', ')}]`;
  if (shape.length === 0 || shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${op}: invalid shape ${s}`);
  const C = shape[shape.length - 1]!;
  const n = shape.reduce((a, b) => a * b, 1);
  if (causal && (shape.length < 2 || shape[shape.length - 2] !== C)) {
    throw new Error(`${op}: causal mask needs a (..., T, T) shape, got ${s}`);
  }
  const limit = rt.limits.maxStorageBufferBindingSize;
  if (n * 4 > limit) throw new LimitError('maxStorageBufferBindingSize', n * 4, limit, `${op} of shape ${s}`);
  for (const b of bufs) {
    if (b.size < n * 4) throw new Error(`${op}: buffer holds ${b.size / 4} elements, shape ${s} needs ${n}`);
  }
  return { rows: C === 0 ? 0 : n / C, C, T: causal ? C : 1 };
}

/**
 * Workgroup shape: TX invocations per row (about UNITS_PER_THREAD vector units each, at most 256)
 * and TY rows per workgroup so that a workgroup has at least 64 invocations. Short rows share a
 * workgroup: per-workgroup overhead (barriers) dominates on CPU implementations such as lavapipe.
 */
const UNITS_PER_THREAD = 16;
function rowShape(kind: SoftmaxKind, causal: boolean, C: number, rows: number): Params {
  const units = C % 4 === 0 ? C / 4 : C;
  let tx = 1;
  while (tx < 256 && tx * UNITS_PER_THREAD < units) tx *= 2;
  let ty = 1;
  while (tx * ty < 64 && ty < rows) ty *= 2;
  return { kind, causal, tx, ty };
}

function forward(rt: Runtime, kind: SoftmaxKind, x: GpuBuffer, shape: readonly number[], options: SoftmaxOptions): GpuBuffer {
  const causal = options.causal ?? false;
  const { rows, C, T } = rowsOf(rt, `${kind}Forward`, shape, [x], causal);
  const y = rt.createBuffer(rows * C * 4);
  if (rows === 0) return y;
  const kernel = C % 4 === 0 ? softmaxForwardVec4Kernel : softmaxForwardKernel;
  rt.dispatch(kernel, rowShape(kind, causal, C, rows), { buffers: { x, y }, uniforms: { rows, C, T } });
  return y;
}

function backward(
  rt: Runtime,
  kind: SoftmaxKind,
  y: GpuBuffer,
  dy: GpuBuffer,
  shape: readonly number[],
  options: SoftmaxOptions,
): GpuBuffer {
  const causal = options.causal ?? false;
  const { rows, C, T } = rowsOf(rt, `${kind}Backward`, shape, [y, dy], causal);
  const dx = rt.createBuffer(rows * C * 4);
  if (rows === 0) return dx;
  const kernel = C % 4 === 0 ? softmaxBackwardVec4Kernel : softmaxBackwardKernel;
  rt.dispatch(kernel, rowShape(kind, causal, C, rows), { buffers: { y, dy, dx }, uniforms: { rows, C, T } });
  return dx;
}

/** y = softmax(x) over the last axis of `shape`. Saves y (softmaxBackward needs only y and dy). */
export function softmaxForward(rt: Runtime, x: GpuBuffer, shape: readonly number[], options: SoftmaxOptions = {}): GpuBuffer {
  return forward(rt, 'softmax', x, shape, options);
}

/** dx = y ⊙ (dy − Σ dy ⊙ y) per row, from the forward output y. */
export function softmaxBackward(
  rt: Runtime,
  y: GpuBuffer,
  dy: GpuBuffer,
  shape: readonly number[],
  options: SoftmaxOptions = {},
): GpuBuffer {
  return backward(rt, 'softmax', y, dy, shape, options);
}

/** y = log softmax(x) over the last axis. Saves y (logSoftmaxBackward needs only y and dy). */
export function logSoftmaxForward(rt: Runtime, x: GpuBuffer, shape: readonly number[], options: SoftmaxOptions = {}): GpuBuffer {
  return forward(rt, 'logSoftmax', x, shape, options);
}

/** dx = dy − exp(y) · Σ dy per row (masked columns: 0); pass the same `causal` as the forward. */
export function logSoftmaxBackward(
  rt: Runtime,
  y: GpuBuffer,
  dy: GpuBuffer,
  shape: readonly number[],
  options: SoftmaxOptions = {},
): GpuBuffer {
  return backward(rt, 'logSoftmax', y, dy, shape, options);
}
