/**
 * The row kernels and the deterministic column reduction shared by LayerNorm (layer-norm.ts) and
 * RMSNorm (rms-norm.ts), plus their host helpers. The math and the design are described in
 * layer-norm.ts; RMSNorm is the same kernels specialized with no mean (x̂ = x·rstd) and no bias.
 *
 * Dimensions: N rows, C channels, T the storage type (f32, or vec4<f32> when C % 4 == 0) and
 * cv = C in units of T, RB row blocks of the dw/db reduction.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { LimitError } from '../runtime/errors.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

export type NormKind = 'layer' | 'rms';

/** Specialization of the row kernels. `vec4` requires C % 4 == 0. */
export interface NormRowParams {
  kind: NormKind;
  vec4: boolean;
  /** Invocations per row (power of two; 1 = no barriers at all) and rows per workgroup. */
  tx: number;
  ty: number;
  weight: boolean;
  bias: boolean;
}
type RowParams = NormRowParams;

const rowKey = (p: RowParams) =>
  `${p.kind}|${p.vec4 ? 4 : 1}|${p.tx}x${p.ty}|${p.weight ? 'w' : ''}${p.bias ? 'b' : ''}`;

/**
 * WGSL shared by the row kernels: the vector type T (f32 or vec4), its horizontal sum, and
 * row_sum, the sum over the WG_X invocations of one row (a tree in shared memory; the identity when
 * WG_X = 1). row_sum must be called in uniform control flow.
 */
function rowPrelude(p: RowParams, lanes: 1 | 2): string {
  const t = p.vec4 ? 'vec4<f32>' : 'f32';
  const r = lanes === 2 ? 'vec2<f32>' : 'f32';
  const tree = /* wgsl */ `
var<workgroup> red: array<${r}, WG_X * WG_Y>;
fn row_sum(v: ${r}, tx: u32, ty: u32) -> ${r} {
  let b = ty * WG_X;
  red[b + tx] = v;
  workgroupBarrier();
  for (var s = WG_X / 2u; s > 0u; s >>= 1u) {
    if (tx < s) { red[b + tx] += red[b + tx + s]; }
    workgroupBarrier();
  }
  let total = red[b];
  workgroupBarrier();
  return total;
}`;
  return /* wgsl */ `
alias T = ${t};
fn hsum(v: T) -> f32 { return ${p.vec4 ? 'dot(v, vec4<f32>(1.0))' : 'v'}; }
${p.tx === 1 ? `fn row_sum(v: ${r}, tx: u32, ty: u32) -> ${r} { return v; }` : tree}`;
}

/** Row index, lane, and the row's length in T units (0 for the padding rows of the last workgroup). */
const ROW_HEADER = /* wgsl */ `
  let row = (wid.x + wid.y * nwg.x) * WG_Y + lid.y;
  let tx = lid.x;
  let len = select(0u, u.cv, row < u.n);
  let base = row * u.cv;`;

const ROW_ENTRY = /* wgsl */ `
@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {`;

/**
 * Row forward. Layer: bindings x, weight, bias, y, mean, rstd. RMS: x, weight, y, rstd
 * (y = x·rstd·w with rstd = 1/√(mean(x²) + eps)). Unused weight/bias bindings get a dummy buffer.
 */
function makeRowForward<const B extends string>(kind: NormKind, names: readonly B[]) {
  return defineKernel({
    name: `${kind}_norm_forward`,
    bindings: names.map((name) => ({
      name,
      type: name === 'mean' || name === 'rstd' ? 'array<f32>' : 'array<T>',
      access: name === 'y' || name === 'mean' || name === 'rstd' ? ('read_write' as const) : ('read' as const),
    })),
    uniforms: [
      { name: 'n', type: 'u32' }, // rows
      { name: 'cv', type: 'u32' }, // C in units of T (C or C/4)
      { name: 'c', type: 'f32' }, // C as a float (the divisor)
      { name: 'eps', type: 'f32' },
    ],
    workgroupSize: (p: RowParams) => [p.tx, p.ty],
    dispatch: (p, u) => grid1d(Math.ceil(u.n / p.ty)),
    key: rowKey,
    wgsl: (p) => /* wgsl */ `${rowPrelude(p, 1)}
${ROW_ENTRY}
  ${p.weight ? '' : '_ = &weight;'} ${p.bias || kind === 'rms' ? '' : '_ = &bias;'}${ROW_HEADER}
  ${
    kind === 'layer'
      ? `// shifted by the row's first element so a large common offset does not eat the f32 sum's precision
  let x0 = x[min(row, u.n - 1u) * u.cv]${p.vec4 ? '.x' : ''};
  var s = 0.0;
  for (var j = tx; j < len; j += WG_X) { s += hsum(x[base + j] - x0); }
  let mu = x0 + row_sum(s, tx, lid.y) / u.c;
  var q = 0.0;
  for (var j = tx; j < len; j += WG_X) { let d = x[base + j] - mu; q += hsum(d * d); }
  let r = inverseSqrt(row_sum(q, tx, lid.y) / u.c + u.eps);`
      : `var q = 0.0;
  for (var j = tx; j < len; j += WG_X) { let v = x[base + j]; q += hsum(v * v); }
  let mu = 0.0;
  let r = inverseSqrt(row_sum(q, tx, lid.y) / u.c + u.eps);`
  }
  for (var j = tx; j < len; j += WG_X) {
    y[base + j] = (x[base + j] - mu) * r${p.weight ? ' * weight[j]' : ''}${p.bias ? ' + bias[j]' : ''};
  }
  if (tx == 0u && len > 0u) { ${kind === 'layer' ? 'mean[row] = mu; ' : ''}rstd[row] = r; }
}`,
  });
}

export const layerNormForwardKernel = makeRowForward('layer', ['x', 'weight', 'bias', 'y', 'mean', 'rstd']);
export const rmsNormForwardKernel = makeRowForward('rms', ['x', 'weight', 'y', 'rstd']);

/** Row backward (dx only): bindings dy, x, weight, mean (layer only), rstd, dx. */
function makeRowBackward<const B extends string>(kind: NormKind, names: readonly B[]) {
  return defineKernel({
    name: `${kind}_norm_backward_dx`,
    bindings: names.map((name) => ({
      name,
      type: name === 'mean' || name === 'rstd' ? 'array<f32>' : 'array<T>',
      access: name === 'dx' ? ('read_write' as const) : ('read' as const),
    })),
    uniforms: [
      { name: 'n', type: 'u32' },
      { name: 'cv', type: 'u32' },
      { name: 'c', type: 'f32' },
    ],
    workgroupSize: (p: RowParams) => [p.tx, p.ty],
    dispatch: (p, u) => grid1d(Math.ceil(u.n / p.ty)),
    key: rowKey,
    wgsl: (p) => /* wgsl */ `${rowPrelude(p, 2)}
${ROW_ENTRY}
  ${p.weight ? '' : '_ = &weight;'}${ROW_HEADER}
  let mu = ${kind === 'layer' ? 'mean[min(row, u.n - 1u)]' : '0.0'};
  let r = rstd[min(row, u.n - 1u)];
  // s.x = Σ g, s.y = Σ g·x̂ with g = dy·w, x̂ = (x − mean)·rstd
  var s = vec2<f32>(0.0);
  for (var j = tx; j < len; j += WG_X) {
    let g = dy[base + j]${p.weight ? ' * weight[j]' : ''};
    s += vec2<f32>(hsum(g), hsum(g * ((x[base + j] - mu) * r)));
  }
  let tot = row_sum(s, tx, lid.y) / u.c;
  let mg = ${kind === 'layer' ? 'tot.x' : '0.0'};
  for (var j = tx; j < len; j += WG_X) {
    let g = dy[base + j]${p.weight ? ' * weight[j]' : ''};
    dx[base + j] = r * (g - mg - (x[base + j] - mu) * r * tot.y);
  }
}`,
  });
}

export const layerNormBackwardKernel = makeRowBackward('layer', ['dy', 'x', 'weight', 'mean', 'rstd', 'dx']);
export const rmsNormBackwardKernel = makeRowBackward('rms', ['dy', 'x', 'weight', 'rstd', 'dx']);

interface PartialParams {
  kind: NormKind;
  vec4: boolean;
}
const PARTIAL_WG = 64;

/**
 * Pass 1 of dw (and db): invocation (column j, row block b) sums rows [b·R, min(N, (b+1)·R)) in order:
 *   partial[b, 0, j] = Σ dy·x̂,  partial[b, 1, j] = Σ dy (layer only; the RMS partial is (RB, 1, C)).
 */
export const normParamPartialKernel = defineKernel({
  name: 'norm_param_grad_partial',
  bindings: [
    { name: 'dy', type: 'array<T>', access: 'read' }, // (N, C)
    { name: 'x', type: 'array<T>', access: 'read' }, // (N, C)
    { name: 'mean', type: 'array<f32>', access: 'read' }, // (N,) (rms: dummy)
    { name: 'rstd', type: 'array<f32>', access: 'read' }, // (N,)
    { name: 'partial', type: 'array<T>', access: 'read_write' }, // (RB, 2 or 1, C)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'cv', type: 'u32' },
    { name: 'rows_per_block', type: 'u32' },
  ],
  workgroupSize: () => [PARTIAL_WG],
  dispatch: (_p: PartialParams, u) => [Math.ceil(u.cv / PARTIAL_WG), Math.ceil(u.n / u.rows_per_block), 1],
  key: (p) => `${p.kind}|${p.vec4 ? 4 : 1}`,
  wgsl: (p) => /* wgsl */ `
alias T = ${p.vec4 ? 'vec4<f32>' : 'f32'};
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  ${p.kind === 'layer' ? '' : '_ = &mean;'}
  let j = gid.x;
  if (j >= u.cv) { return; }
  let b = wid.y;
  let r0 = b * u.rows_per_block;
  let r1 = min(u.n, r0 + u.rows_per_block);
  var dw = T(0.0);
  var db = T(0.0);
  for (var row = r0; row < r1; row++) {
    let i = row * u.cv + j;
    let g = dy[i];
    dw += g * ((x[i] - ${p.kind === 'layer' ? 'mean[row]' : '0.0'}) * rstd[row]);
    db += g;
  }
  ${
    p.kind === 'layer'
      ? 'partial[2u * b * u.cv + j] = dw;\n  partial[(2u * b + 1u) * u.cv + j] = db;'
      : '_ = db;\n  partial[b * u.cv + j] = dw;'
  }
}`,
});

/** Pass 2: out[j] = Σ_{r < rows} partial[r·stride + offset + j], in order of r (zero when rows = 0). */
export const normColumnSumKernel = defineKernel({
  name: 'norm_column_sum',
  bindings: [
    { name: 'partial', type: 'array<f32>', access: 'read' }, // (rows, stride)
    { name: 'out', type: 'array<f32>', access: 'read_write' }, // (len,)
  ],
  uniforms: [
    { name: 'rows', type: 'u32' },
    { name: 'stride', type: 'u32' },
    { name: 'offset', type: 'u32' },
    { name: 'len', type: 'u32' },
  ],
  workgroupSize: () => [64],
  dispatch: (_p, u) => grid1d(Math.ceil(u.len / 64)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let j = gid.x + gid.y * nwg.x * WG_X;
  if (j >= u.len) { return; }
  var s = 0.0;
  for (var r = 0u; r < u.rows; r++) { s += partial[r * u.stride + u.offset + j]; }
  out[j] = s;
}`,
});

// ------------------------------------------------------------------------------------------ host

/**
 * Row-kernel shape for rows of `cv` T units. On CPU implementations (lavapipe, SwiftShader) a
 * workgroup barrier costs more than a whole row's arithmetic, so one invocation owns a row (tx = 1,
 * 16 rows per workgroup: measured ~5x faster than a 64-wide tree on lavapipe at C = 1024). On GPUs,
 * tx invocations share a row (about 4 units each, ≤ 256) with ty rows filling a workgroup of ≥ 64.
 */
export function normRowShape(rt: Runtime, cv: number, n: number, threadsPerRow?: number): { tx: number; ty: number } {
  const a = rt.info.adapter;
  const cpu = a.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(`${a.description} ${a.device}`);
  let tx = threadsPerRow ?? 1;
  if (!Number.isInteger(Math.log2(tx)) || tx > 256) throw new Error(`normRowShape: threadsPerRow must be a power of two ≤ 256, got ${tx}`);
  if (threadsPerRow === undefined && !cpu) while (tx < 256 && tx * 4 < cv) tx *= 2;
  const minGroup = tx === 1 ? 16 : 64;
  let ty = 1;
  while (tx * ty < minGroup && ty < n) ty *= 2;
  return { tx, ty };
}

/** Validates a (N, C) shape and the element counts of the buffers; returns [N, C]. */
export function checkNormShape(
  rt: Runtime,
  op: string,
  shape: readonly number[],
  buffers: Readonly<Record<string, { buf: GpuBuffer | null; elems: 'NC' | 'N' | 'C' }>>,
): [number, number] {
  if (shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d >= 0) || shape[1] === 0) {
    throw new Error(`${op}: shape must be [N, C] with integer N ≥ 0 and C ≥ 1 (shapes [${shape.join(', ')}])`);
  }
  const [n, c] = shape as [number, number];
  const want = { NC: n * c, N: n, C: c };
  for (const [name, { buf, elems }] of Object.entries(buffers)) {
    if (!buf) continue;
    if (buf.size !== want[elems] * 4) {
      const dims = elems === 'NC' ? `[${n}, ${c}]` : elems === 'N' ? `[${n}]` : `[${c}]`;
      throw new Error(`${op}: ${name} must have ${want[elems]} elements (shapes [${n}, ${c}] and ${name} [${buf.size / 4}], want ${dims})`);
    }
  }
  const limit = rt.limits.maxStorageBufferBindingSize;
  if (n * c * 4 > limit) throw new LimitError('maxStorageBufferBindingSize', n * c * 4, limit, `${op} (N, C) = [${n}, ${c}]`);
  return [n, c];
}

/** Rows per block of the dw/db reduction: at most 64 blocks, at least 16 rows each. */
export function normRowsPerBlock(n: number): number {
  return Math.max(16, Math.ceil(n / 64));
}

/** dw (and db for LayerNorm) by the two-pass reduction; every returned buffer is fully written. */
export function normParamGrads(
  rt: Runtime,
  kind: NormKind,
  dy: GpuBuffer,
  x: GpuBuffer,
  mean: GpuBuffer | null,
  rstd: GpuBuffer,
  n: number,
  c: number,
  outs: { dweight: boolean; dbias: boolean },
): { dweight: GpuBuffer | null; dbias: GpuBuffer | null } {
  const vec4 = c % 4 === 0;
  const cv = vec4 ? c / 4 : c;
  const rowsPerBlock = normRowsPerBlock(n);
  const blocks = Math.ceil(n / rowsPerBlock);
  const lanes = kind === 'layer' ? 2 : 1;
  const partial = rt.createBuffer(blocks * lanes * c * 4);
  if (n > 0 && (outs.dweight || outs.dbias)) {
    rt.dispatch(normParamPartialKernel, { kind, vec4 }, {
      buffers: { dy, x, mean: mean ?? rstd, rstd, partial },
      uniforms: { n, cv, rows_per_block: rowsPerBlock },
    });
  }
  const sum = (lane: number): GpuBuffer => {
    const out = rt.createBuffer(c * 4);
    rt.dispatch(normColumnSumKernel, undefined, {
      buffers: { partial, out },
      uniforms: { rows: blocks, stride: lanes * c, offset: lane * c, len: c },
    });
    return out;
  };
  const result = { dweight: outs.dweight ? sum(0) : null, dbias: outs.dbias && kind === 'layer' ? sum(1) : null };
  rt.release(partial);
  return result;
}
