/**
 * Fused softmax cross-entropy over a vocabulary, forward and backward, with ignored rows.
 *
 * Dimension legend: N rows (tokens), V classes (vocabulary). logits (N, V) f32, targets (N,) i32.
 *
 * Forward (one dispatch, one workgroup per row: a max sweep and a Σexp sweep over the row, the
 * second from cache, vec4 loads when V % 4 = 0, then one read of the target logit):
 *   lse_r = M_r + log Σ_c exp(logits_rc − M_r)        (M_r the row max: stable)
 *   loss_r = lse_r − logits_r,t_r, or 0 when t_r = ignoreIndex
 * then one small single-workgroup reduction on the GPU (256 invocations striding over N):
 *   count = #{r : t_r ≠ ignoreIndex},  loss = Σ_r loss_r / count       (count = 0 → loss = NaN)
 * It saves lse (N,) and count (1,) for the backward; nothing is read back to the CPU.
 *
 * Backward (one pass over the logits, one workgroup per row, no reduction thanks to the saved lse):
 *   dlogits_rc = (exp(logits_rc − lse_r) − [c = t_r]) · dloss / count,   0 for ignored rows,
 * where dloss is a 1-element GPU buffer (the upstream gradient of the mean loss).
 *
 * Targets are not checked on the host (that would need a readback): a target outside [0, V) that is
 * not ignoreIndex gives a NaN row loss, hence a NaN mean loss, and a NaN gradient row.
 * Logits: +Inf anywhere in a row → NaN loss for that row; -Inf at the target (others finite) → +Inf
 * loss; NaN anywhere in a non-ignored row → NaN.
 *
 * Non-goals: label smoothing, class weights, reductions other than the mean, f16 logits.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

const COMMON = /* wgsl */ `
var<private> INF_BITS: u32 = 0x7f800000u;
var<private> NAN_BITS: u32 = 0x7fc00000u;
fn inf() -> f32 { return bitcast<f32>(INF_BITS); }
fn nan() -> f32 { return bitcast<f32>(NAN_BITS); }
fn isnan_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn maxn(a: f32, b: f32) -> f32 { return select(max(a, b), a + b, isnan_(a) | isnan_(b)); }
`;

/** WGSL for a vector width W: 4 (logits bound as vec4, V % 4 = 0) or 1. */
function widthHelpers(w: 1 | 4): string {
  return /* wgsl */ `
alias VT = ${w === 4 ? 'vec4<f32>' : 'f32'};
alias VU = ${w === 4 ? 'vec4<u32>' : 'u32'};
const W = ${w}u;
fn lanes(q: u32) -> VU { return ${w === 4 ? 'vec4<u32>(q * 4u) + vec4<u32>(0u, 1u, 2u, 3u)' : 'q'}; }
fn hmax(v: VT) -> f32 { return ${w === 4 ? 'maxn(maxn(v.x, v.y), maxn(v.z, v.w))' : 'v'}; }
fn hsum(v: VT) -> f32 { return ${w === 4 ? '(v.x + v.y) + (v.z + v.w)' : 'v'}; }
fn logitAt(base: u32, c: u32) -> f32 { return ${w === 4 ? 'logits[base + c / 4u][c % 4u]' : 'logits[base + c]'}; }`;
}

interface Params {
  /** Invocations per row. */
  readonly wg: number;
}

function makeRowsKernel(w: 1 | 4) {
  return defineKernel({
    name: w === 4 ? 'cross_entropy_rows_vec4' : 'cross_entropy_rows',
    bindings: [
      { name: 'logits', type: w === 4 ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' }, // (N, V)
      { name: 'targets', type: 'array<i32>', access: 'read' }, // (N,)
      { name: 'rowLoss', type: 'array<f32>', access: 'read_write' }, // (N,)
      { name: 'lse', type: 'array<f32>', access: 'read_write' }, // (N,)
    ],
    uniforms: [
      { name: 'rows', type: 'u32' },
      { name: 'V', type: 'u32' },
      { name: 'ignore', type: 'i32' },
    ],
    workgroupSize: (p: Params) => [p.wg],
    dispatch: (_p, u) => grid1d(u.rows),
    key: (p) => `${p.wg}`,
    wgsl: () => /* wgsl */ `${COMMON}${widthHelpers(w)}
var<workgroup> shm: array<f32, WG_X>;
var<workgroup> shs: array<f32, WG_X>;
// s · e^{m − M}, where an empty partial (s = 0) contributes 0 even when M = -Inf.
fn part(s: f32, m: f32, M: f32) -> f32 { return select(s * exp(m - M), 0.0, s == 0.0); }
@compute @workgroup_size(WG_X)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.rows) { return; } // uniform across the workgroup
  let t = lid.x;
  let units = u.V / W;
  let base = row * units;
  var m = -inf();
  for (var q = t; q < units; q += WG_X) { m = maxn(m, hmax(logits[base + q])); }
  // a partial whose max is -Inf (or NaN) keeps s = 0: it adds nothing, and M carries the NaN
  var s = 0.0;
  if (m > -inf()) {
    for (var q = t; q < units; q += WG_X) { s += hsum(exp(logits[base + q] - VT(m))); }
  }
  shm[t] = m;
  shs[t] = s;
  workgroupBarrier();
  for (var h = WG_X / 2u; h > 0u; h = h / 2u) {
    if (t < h) {
      let m1 = shm[t];
      let m2 = shm[t + h];
      let M = maxn(m1, m2);
      shs[t] = part(shs[t], m1, M) + part(shs[t + h], m2, M);
      shm[t] = M;
    }
    workgroupBarrier();
  }
  if (t == 0u) {
    let M = shm[0];
    let logS = log(shs[0]);
    lse[row] = M + logS;
    let tg = targets[row];
    var loss = 0.0;
    if (tg != u.ignore) {
      // (M − x_t) + log S keeps log S when |M| is huge
      if (tg < 0 || u32(tg) >= u.V) { loss = nan(); } else { loss = (M - logitAt(base, u32(tg))) + logS; }
    }
    rowLoss[row] = loss;
  }
}`,
  });
}

export const crossEntropyRowsKernel = makeRowsKernel(1);
export const crossEntropyRowsVec4Kernel = makeRowsKernel(4);

const MEAN_WG = 256;

export const crossEntropyMeanKernel = defineKernel({
  name: 'cross_entropy_mean',
  bindings: [
    { name: 'rowLoss', type: 'array<f32>', access: 'read' }, // (N,)
    { name: 'targets', type: 'array<i32>', access: 'read' }, // (N,)
    { name: 'loss', type: 'array<f32>', access: 'read_write' }, // (1,)
    { name: 'count', type: 'array<f32>', access: 'read_write' }, // (1,)
  ],
  uniforms: [
    { name: 'rows', type: 'u32' },
    { name: 'ignore', type: 'i32' },
  ],
  workgroupSize: () => [MEAN_WG],
  dispatch: () => [1, 1, 1],
  key: () => '',
  wgsl: () => /* wgsl */ `${COMMON}
var<workgroup> shs: array<f32, WG_X>;
var<workgroup> shc: array<u32, WG_X>;
@compute @workgroup_size(WG_X)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  let t = lid.x;
  var s = 0.0;
  var c = 0u;
  for (var j = t; j < u.rows; j += WG_X) {
    if (targets[j] != u.ignore) { s += rowLoss[j]; c += 1u; }
  }
  shs[t] = s;
  shc[t] = c;
  workgroupBarrier();
  for (var h = WG_X / 2u; h > 0u; h = h / 2u) {
    if (t < h) { shs[t] += shs[t + h]; shc[t] += shc[t + h]; }
    workgroupBarrier();
  }
  if (t == 0u) {
    let n = f32(shc[0]);
    count[0] = n;
    loss[0] = select(shs[0] / n, nan(), shc[0] == 0u);
  }
}`,
});

function makeBackwardKernel(w: 1 | 4) {
  const arr = w === 4 ? 'array<vec4<f32>>' : 'array<f32>';
  return defineKernel({
    name: w === 4 ? 'cross_entropy_backward_vec4' : 'cross_entropy_backward',
    bindings: [
      { name: 'logits', type: arr, access: 'read' }, // (N, V)
      { name: 'targets', type: 'array<i32>', access: 'read' }, // (N,)
      { name: 'lse', type: 'array<f32>', access: 'read' }, // (N,) saved by the forward
      { name: 'count', type: 'array<f32>', access: 'read' }, // (1,) saved by the forward
      { name: 'dloss', type: 'array<f32>', access: 'read' }, // (1,)
      { name: 'dlogits', type: arr, access: 'read_write' }, // (N, V)
    ],
    uniforms: [
      { name: 'rows', type: 'u32' },
      { name: 'V', type: 'u32' },
      { name: 'ignore', type: 'i32' },
    ],
    workgroupSize: (p: Params) => [p.wg],
    dispatch: (_p, u) => grid1d(u.rows),
    key: (p) => `${p.wg}`,
    wgsl: () => /* wgsl */ `${COMMON}${widthHelpers(w)}
@compute @workgroup_size(WG_X)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= u.rows) { return; }
  let units = u.V / W;
  let base = row * units;
  let tg = targets[row];
  if (tg == u.ignore) {
    for (var q = lid.x; q < units; q += WG_X) { dlogits[base + q] = VT(0.0); }
    return;
  }
  // an out-of-range target poisons its row (the forward's row loss is NaN too)
  let scale = select(dloss[0] / count[0], nan(), tg < 0 || u32(tg) >= u.V);
  let l = VT(lse[row]);
  let hot = VU(u32(tg));
  for (var q = lid.x; q < units; q += WG_X) {
    let p = exp(logits[base + q] - l);
    dlogits[base + q] = (p - select(VT(0.0), VT(1.0), lanes(q) == hot)) * scale;
  }
}`,
  });
}

export const crossEntropyBackwardKernel = makeBackwardKernel(1);
export const crossEntropyBackwardVec4Kernel = makeBackwardKernel(4);

export interface CrossEntropyOptions {
  /** Target value marking a row to skip (no loss, no gradient, not counted). Default -100. */
  ignoreIndex?: number;
}

/** What crossEntropyForward returns: the mean loss and what the backward needs. */
export interface CrossEntropySaved {
  /** (1,) mean loss over non-ignored rows. */
  loss: GpuBuffer;
  /** (N,) per-row loss (0 for ignored rows). */
  rowLoss: GpuBuffer;
  /** (N,) per-row logsumexp of the logits (saved for the backward). */
  lse: GpuBuffer;
  /** (1,) f32 number of non-ignored rows (saved for the backward). */
  count: GpuBuffer;
}

function check(rt: Runtime, op: string, shape: readonly number[], logits: GpuBuffer, targets: GpuBuffer, ignoreIndex: number) {
  const s = `[${shape.join(', ')}]`;
  if (shape.length !== 2 || shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${op}: logits must be (N, V), got shape ${s}`);
  const [N, V] = shape as [number, number];
  if (V === 0 || V > 0x7fffffff) throw new Error(`${op}: V must be in [1, 2^31), got shape ${s}`);
  const limit = rt.limits.maxStorageBufferBindingSize;
  if (N * V * 4 > limit) throw new LimitError('maxStorageBufferBindingSize', N * V * 4, limit, `${op} logits of shape ${s}`);
  if (logits.size < N * V * 4) throw new Error(`${op}: logits buffer holds ${logits.size / 4} elements, shape ${s} needs ${N * V}`);
  if (targets.size < N * 4) throw new Error(`${op}: targets buffer holds ${targets.size / 4} elements, shape [${N}] needed (logits ${s})`);
  if (!Number.isInteger(ignoreIndex) || ignoreIndex < -0x80000000 || ignoreIndex > 0x7fffffff) {
    throw new Error(`${op}: ignoreIndex must be an i32, got ${ignoreIndex} (logits ${s})`);
  }
  return { N, V };
}

/** Invocations per row: about 16 vector units each, between 32 and 256. */
function rowWorkgroup(V: number): Params {
  const units = V % 4 === 0 ? V / 4 : V;
  let wg = 32;
  while (wg < 256 && wg * 16 < units) wg *= 2;
  return { wg };
}

/**
 * Mean cross-entropy of softmax(logits) against integer targets (i32). Saves lse and count.
 * Four new buffers; the caller releases them (or keeps lse and count for crossEntropyBackward).
 */
export function crossEntropyForward(
  rt: Runtime,
  logits: GpuBuffer,
  targets: GpuBuffer,
  shape: readonly number[],
  options: CrossEntropyOptions = {},
): CrossEntropySaved {
  const ignore = options.ignoreIndex ?? -100;
  const { N, V } = check(rt, 'crossEntropyForward', shape, logits, targets, ignore);
  const rowLoss = rt.createBuffer(N * 4);
  const lse = rt.createBuffer(N * 4);
  const loss = rt.createBuffer(4);
  const count = rt.createBuffer(4);
  if (N > 0) {
    rt.dispatch(V % 4 === 0 ? crossEntropyRowsVec4Kernel : crossEntropyRowsKernel, rowWorkgroup(V), {
      buffers: { logits, targets, rowLoss, lse },
      uniforms: { rows: N, V, ignore },
    });
  }
  // Also with N = 0 (loss NaN, count 0); pooled buffers are never smaller than 4 bytes to bind.
  rt.dispatch(crossEntropyMeanKernel, undefined, {
    buffers: { rowLoss, targets, loss, count },
    uniforms: { rows: N, ignore },
  });
  return { loss, rowLoss, lse, count };
}

/**
 * dlogits = (softmax(logits) − onehot(targets)) · dloss / count, zero rows where target = ignoreIndex.
 * `saved` is crossEntropyForward's result (lse and count are used); dloss is a (1,) GPU buffer.
 */
export function crossEntropyBackward(
  rt: Runtime,
  logits: GpuBuffer,
  targets: GpuBuffer,
  saved: Pick<CrossEntropySaved, 'lse' | 'count'>,
  dloss: GpuBuffer,
  shape: readonly number[],
  options: CrossEntropyOptions = {},
): GpuBuffer {
  const ignore = options.ignoreIndex ?? -100;
  const { N, V } = check(rt, 'crossEntropyBackward', shape, logits, targets, ignore);
  if (saved.lse.size < N * 4 || saved.count.size < 4 || dloss.size < 4) {
    throw new Error(`crossEntropyBackward: lse must hold N = ${N} elements, count and dloss 1 (logits [${shape.join(', ')}])`);
  }
  const dlogits = rt.createBuffer(N * V * 4);
  if (N === 0) return dlogits;
  rt.dispatch(V % 4 === 0 ? crossEntropyBackwardVec4Kernel : crossEntropyBackwardKernel, rowWorkgroup(V), {
    buffers: { logits, targets, lse: saved.lse, count: saved.count, dloss, dlogits },
    uniforms: { rows: N, V, ignore },
  });
  return dlogits;
}
