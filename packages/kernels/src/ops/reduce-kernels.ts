/**
 * WGSL kernels of the reductions (host side and the full description: reduce.ts).
 *
 * Dimension legend: the input is viewed as (O, R, I): O outer rows, R the reduced extent, I inner
 * elements; a pass writes (O, G, I) partials, G = number of chunks of R (the last pass: G = 1).
 * Row kernels (I = 1): TX invocations fold one chunk of TX·items elements of a row (items each in
 * registers, then a tree over the TX), TY such (row, chunk) pairs per workgroup. Strided kernels
 * (I > 1): an invocation folds up to REDUCE_STRIDED_CHUNK elements of one column. Argmax kernels
 * carry (value, index) pairs.
 */
import { defineKernel, grid1d } from '../runtime/kernel.js';

/** How partials combine in WGSL (a, b are f32 or vec4<f32>; isnan_ works on both). */
export type ReduceCombine = 'sum' | 'max' | 'min' | 'argmax';

const IDENTITY: { readonly [K in ReduceCombine]: string } = {
  sum: '0.0',
  max: '-inf()',
  min: 'inf()',
  argmax: '-inf()',
};

const COMBINE_WGSL: { readonly [K in ReduceCombine]: string } = {
  sum: 'a + b',
  max: 'select(max(a, b), a + b, isnan_(a) | isnan_(b))',
  min: 'select(min(a, b), a + b, isnan_(a) | isnan_(b))',
  argmax: '', // value/index pairs: see ARGMAX_HELPERS
};

const WGSL_COMMON = /* wgsl */ `
// Not a const: WGSL rejects infinite constant expressions, so the bits go through a private var.
var<private> INF_BITS: u32 = 0x7f800000u;
fn inf() -> f32 { return bitcast<f32>(INF_BITS); }
fn isnan_(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn isnan4_(x: vec4<f32>) -> vec4<bool> { return (bitcast<vec4<u32>>(x) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u); }
`;

// (va, ia) beats (vb, ib): NaN is the largest value; among equals the lower index wins.
const ARGMAX_HELPERS = /* wgsl */ `
fn beats(va: f32, ia: u32, vb: f32, ib: u32) -> bool {
  if (isnan_(va)) { return !isnan_(vb) || ia < ib; }
  if (isnan_(vb)) { return false; }
  return va > vb || (va == vb && ia < ib);
}`;

/** Invocations per workgroup (TX·TY for the row kernels). */
export const REDUCE_WG = 64;
const STRIDED_WG = REDUCE_WG;
/** Elements of a column one invocation of the strided kernels folds per pass. */
export const REDUCE_STRIDED_CHUNK = 256;
const STRIDED_CHUNK = REDUCE_STRIDED_CHUNK;

export interface ReduceKernelParams {
  readonly combine: ReduceCombine;
  readonly square: boolean;
  readonly mean: boolean;
  /** Row kernels: elements per invocation (a multiple of 4); chunk = tx · items. */
  readonly items: number;
  /** Row kernels: invocations per (row, chunk) pair, and pairs per workgroup (tx · ty = REDUCE_WG). */
  readonly tx: number;
  readonly ty: number;
}

const key = (p: ReduceKernelParams) => `${p.combine}|${p.square}|${p.mean}|${p.items}|${p.tx}|${p.ty}`;

function valueHelpers(p: ReduceKernelParams): string {
  const sq = p.square ? 'v * v' : 'v';
  const comb = COMBINE_WGSL[p.combine];
  return `${WGSL_COMMON}
fn comb(a: f32, b: f32) -> f32 { return ${comb}; }
fn comb4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> { return ${comb.replaceAll('isnan_(', 'isnan4_(')}; }
fn prep(v: f32) -> f32 { return ${sq}; }
fn prep4(v: vec4<f32>) -> vec4<f32> { return ${sq}; }
fn finish(a: f32) -> f32 { return ${p.mean ? 'a * u.scale' : 'a'}; }`;
}

// Row kernels: workgroup (TX, TY) = TX invocations per (row, chunk) pair, TY pairs per workgroup,
// so short rows share a workgroup. Pair w = row·G + g covers x[row, g·chunk ..), chunk = TX·items.
// Pairs past the end still run to the barriers, with an empty range.
const ROW_SETUP = /* wgsl */ `
  let w0 = (wid.x + wid.y * nwg.x) * WG_Y;
  if (w0 >= u.rows * u.G) { return; } // uniform across the workgroup
  let w = w0 + lid.y;
  let ok = w < u.rows * u.G;
  let t = lid.x;
  let slot = lid.y * WG_X + t;
  let row = w / u.G;
  let CHUNK = WG_X * ITEMS;
  let start = (w % u.G) * CHUNK;
  var end = min(u.R, start + CHUNK);
  if (!ok) { end = start; }`;

const ROW_BUILTINS = `@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>`;

/**
 * y[row, g] = reduce(x[row, g·chunk .. (g+1)·chunk)), the mean's 1/R applied when G = 1.
 * The vec4 variant binds x as vec4s (R a multiple of 4) and keeps four lanes of partials.
 */
function makeRowKernel(vec4: boolean) {
  return defineKernel({
    name: vec4 ? 'reduce_rows_vec4' : 'reduce_rows',
    bindings: [
      { name: 'x', type: vec4 ? 'array<vec4<f32>>' : 'array<f32>', access: 'read' }, // (O, R)
      { name: 'y', type: 'array<f32>', access: 'read_write' }, // (O, G)
    ],
    uniforms: [
      { name: 'rows', type: 'u32' },
      { name: 'R', type: 'u32' },
      { name: 'G', type: 'u32' }, // chunks per row = ceil(R / chunk), at least 1
      { name: 'first', type: 'u32' }, // 1 on the first pass (apply prep)
      { name: 'scale', type: 'f32' }, // 1/R of the original axis (mean), NaN when R = 0
    ],
    workgroupSize: (p: ReduceKernelParams) => [p.tx, p.ty],
    dispatch: (p, u) => grid1d(Math.ceil((u.rows * u.G) / p.ty)),
    key,
    wgsl: (p) => /* wgsl */ `${valueHelpers(p)}
const ITEMS = ${p.items}u;
var<workgroup> sh: array<f32, ${p.tx * p.ty}>;
@compute @workgroup_size(WG_X, WG_Y)
fn main(${ROW_BUILTINS}) {${ROW_SETUP}
  let pre = u.first == 1u;
  var acc = ${IDENTITY[p.combine]};
${
  vec4
    ? `  // in vec4 units: R and chunk starts are multiples of 4
  let base = row * (u.R / 4u);
  var acc4 = vec4<f32>(${IDENTITY[p.combine]});
  for (var k = 0u; k < ITEMS / 4u; k++) {
    let j = start / 4u + k * WG_X + t;
    if (j >= end / 4u) { break; }
    {
      var v = x[base + j];
      if (pre) { v = prep4(v); }
      acc4 = comb4(acc4, v);
    }
  }
  acc = comb(comb(acc4.x, acc4.y), comb(acc4.z, acc4.w));`
    : `  let base = row * u.R;
  for (var k = 0u; k < ITEMS; k++) {
    let j = start + k * WG_X + t;
    if (j >= end) { break; }
    {
      var v = x[base + j];
      if (pre) { v = prep(v); }
      acc = comb(acc, v);
    }
  }`
}
  sh[slot] = acc;
  workgroupBarrier();
  for (var s = WG_X / 2u; s > 0u; s = s / 2u) {
    if (t < s) { sh[slot] = comb(sh[slot], sh[slot + s]); }
    workgroupBarrier();
  }
  if (t == 0u && ok) { y[w] = select(sh[slot], finish(sh[slot]), u.G == 1u); }
}`,
  });
}
export const reduceRowsKernel = makeRowKernel(false);
export const reduceRowsVec4Kernel = makeRowKernel(true);

/** The argmax version of reduceRowsKernel: (value, index) pairs; indices come from xi after the first pass. */
export const reduceRowsArgmaxKernel = defineKernel({
  name: 'reduce_rows_argmax',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (O, R) values
    { name: 'xi', type: 'array<u32>', access: 'read' }, // (O, R) indices (ignored on the first pass)
    { name: 'y', type: 'array<f32>', access: 'read_write' }, // (O, G)
    { name: 'yi', type: 'array<u32>', access: 'read_write' }, // (O, G)
  ],
  uniforms: [
    { name: 'rows', type: 'u32' },
    { name: 'R', type: 'u32' },
    { name: 'G', type: 'u32' },
    { name: 'first', type: 'u32' },
  ],
  workgroupSize: (p: Pick<ReduceKernelParams, 'items' | 'tx' | 'ty'>) => [p.tx, p.ty],
  dispatch: (p, u) => grid1d(Math.ceil((u.rows * u.G) / p.ty)),
  key: (p) => `${p.items}|${p.tx}|${p.ty}`,
  wgsl: (p) => /* wgsl */ `${WGSL_COMMON}${ARGMAX_HELPERS}
const ITEMS = ${p.items}u;
var<workgroup> shv: array<f32, ${p.tx * p.ty}>;
var<workgroup> shi: array<u32, ${p.tx * p.ty}>;
@compute @workgroup_size(WG_X, WG_Y)
fn main(${ROW_BUILTINS}) {${ROW_SETUP}
  let base = row * u.R;
  var bv = -inf();
  var bi = 0xffffffffu;
  for (var k = 0u; k < ITEMS; k++) {
    let j = start + k * WG_X + t;
    if (j >= end) { break; }
    {
      let v = x[base + j];
      var i = j;
      if (u.first == 0u) { i = xi[base + j]; }
      if (beats(v, i, bv, bi)) { bv = v; bi = i; }
    }
  }
  shv[slot] = bv;
  shi[slot] = bi;
  workgroupBarrier();
  for (var s = WG_X / 2u; s > 0u; s = s / 2u) {
    if (t < s && beats(shv[slot + s], shi[slot + s], shv[slot], shi[slot])) {
      shv[slot] = shv[slot + s];
      shi[slot] = shi[slot + s];
    }
    workgroupBarrier();
  }
  if (t == 0u && ok) { y[w] = shv[slot]; yi[w] = shi[slot]; }
}`,
});

/** y[o, g, i] = reduce over r in [g·STRIDED_CHUNK, ..) of x[o, r, i]. One invocation per output. */
export const reduceStridedKernel = defineKernel({
  name: 'reduce_strided',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (O, R, I)
    { name: 'y', type: 'array<f32>', access: 'read_write' }, // (O, G, I)
  ],
  uniforms: [
    { name: 'total', type: 'u32' }, // O·G·I
    { name: 'R', type: 'u32' },
    { name: 'I', type: 'u32' },
    { name: 'G', type: 'u32' },
    { name: 'first', type: 'u32' },
    { name: 'scale', type: 'f32' },
  ],
  workgroupSize: () => [STRIDED_WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.total / STRIDED_WG)),
  key,
  wgsl: (p) => /* wgsl */ `${valueHelpers(p)}
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * WG_X;
  if (n >= u.total) { return; }
  let i = n % u.I;
  let g = (n / u.I) % u.G;
  let o = n / (u.I * u.G);
  let start = g * ${STRIDED_CHUNK}u;
  let end = min(u.R, start + ${STRIDED_CHUNK}u);
  var acc = ${IDENTITY[p.combine]};
  for (var r = start; r < end; r++) {
    var v = x[(o * u.R + r) * u.I + i];
    if (u.first == 1u) { v = prep(v); }
    acc = comb(acc, v);
  }
  y[n] = select(acc, finish(acc), u.G == 1u);
}`,
});

export const reduceStridedArgmaxKernel = defineKernel({
  name: 'reduce_strided_argmax',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (O, R, I)
    { name: 'xi', type: 'array<u32>', access: 'read' }, // (O, R, I), ignored on the first pass
    { name: 'y', type: 'array<f32>', access: 'read_write' }, // (O, G, I)
    { name: 'yi', type: 'array<u32>', access: 'read_write' }, // (O, G, I)
  ],
  uniforms: [
    { name: 'total', type: 'u32' },
    { name: 'R', type: 'u32' },
    { name: 'I', type: 'u32' },
    { name: 'G', type: 'u32' },
    { name: 'first', type: 'u32' },
  ],
  workgroupSize: () => [STRIDED_WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.total / STRIDED_WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `${WGSL_COMMON}${ARGMAX_HELPERS}
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let n = gid.x + gid.y * nwg.x * WG_X;
  if (n >= u.total) { return; }
  let i = n % u.I;
  let g = (n / u.I) % u.G;
  let o = n / (u.I * u.G);
  let start = g * ${STRIDED_CHUNK}u;
  let end = min(u.R, start + ${STRIDED_CHUNK}u);
  var bv = -inf();
  var bi = 0xffffffffu;
  for (var r = start; r < end; r++) {
    let at = (o * u.R + r) * u.I + i;
    let v = x[at];
    var k = r;
    if (u.first == 0u) { k = xi[at]; }
    if (beats(v, k, bv, bi)) { bv = v; bi = k; }
  }
  y[n] = bv;
  yi[n] = bi;
}`,
});

