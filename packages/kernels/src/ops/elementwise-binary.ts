/**
 * Elementwise kernels, part 2: binary ops and where(cond, a, b) with NumPy broadcasting, and the
 * fused bias + gelu forward used after a linear layer.
 *
 * The output shape is computed on the host (`broadcastShapes`); shapes are collapsed (size-1 dims
 * dropped, contiguous runs merged) before dispatch, so e.g. [64,128] + [64,128] becomes one flat
 * dimension and takes the vec4 same-shape kernel, and a bias over the last axis becomes rank 2. The
 * broadcast kernel is specialized on the collapsed rank (≤ 6) and walks one output element per
 * invocation, turning its flat index into per-input offsets with the uniforms d_j (dims, innermost
 * first) and s{k}_j (input k's element stride along dim j; 0 where k is broadcast).
 *
 * Comparisons return 1.0 / 0.0 as f32 (NaN compares false except `ne`); maximum and minimum
 * propagate NaN like NumPy; pow follows NumPy for negative bases.
 *
 * Non-goals: type promotion, integer or bool tensors, out-of-place views.
 *
 * Dimension legend: N elements of the output, C channels (last axis).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import {
  ELEMENTWISE_MAX_RANK,
  ELEMENTWISE_WG,
  ELEMENTWISE_WGSL_LIB,
  assertVec4,
  broadcastShapes,
  broadcastStrides,
  checkBuffer,
  collapseDims,
  fmtShape,
  mapVec4Wgsl,
  numel,
  type Collapsed,
} from './elementwise.js';

export type BinaryOp =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

/** f(a, b) as a WGSL f32 expression. A missing op is a type error. */
export const BINARY_WGSL: { readonly [K in BinaryOp]: string } = {
  add: 'a + b',
  sub: 'a - b',
  mul: 'a * b',
  div: 'a / b',
  pow: 'ew_pow(a, b)',
  maximum: 'ew_max(a, b)',
  minimum: 'ew_min(a, b)',
  eq: 'select(0.0, 1.0, a == b)',
  ne: 'select(1.0, 0.0, a == b)',
  lt: 'select(0.0, 1.0, a < b)',
  le: 'select(0.0, 1.0, a <= b)',
  gt: 'select(0.0, 1.0, a > b)',
  ge: 'select(0.0, 1.0, a >= b)',
};

export const BINARY_OPS = Object.keys(BINARY_WGSL) as BinaryOp[];

/** where(c, a, b): a where c ≠ 0 (NaN counts as true, as in NumPy), else b. */
const WHERE_WGSL = 'select(a, b, c == 0.0)';

// ------------------------------------------------------------------ broadcast index machinery

const MAX_INPUTS = 3;
const DIM_UNIFORMS = Array.from({ length: ELEMENTWISE_MAX_RANK }, (_, j) => `d${j}`);
const STRIDE_UNIFORMS = (k: number) => Array.from({ length: ELEMENTWISE_MAX_RANK }, (_, j) => `s${k}_${j}`);

/** Uniform declarations of a broadcast kernel with `inputs` inputs: n, d0..d5, s{k}_0..s{k}_5. */
export function broadcastUniforms(inputs: number): { name: string; type: 'u32' }[] {
  const names = ['n', ...DIM_UNIFORMS];
  for (let k = 0; k < inputs; k++) names.push(...STRIDE_UNIFORMS(k));
  return names.map((name) => ({ name, type: 'u32' as const }));
}

/** Uniform values for a collapsed broadcast (unused dims are 1 with stride 0). */
export function broadcastUniformValues(n: number, c: Collapsed): Record<string, number> {
  const u: Record<string, number> = { n };
  for (let j = 0; j < ELEMENTWISE_MAX_RANK; j++) {
    u[`d${j}`] = c.dims[j] ?? 1;
    c.strides.forEach((s, k) => (u[`s${k}_${j}`] = s[j] ?? 0));
  }
  return u;
}

/**
 * WGSL that turns the flat output index `i` into offsets `o0 .. o{inputs-1}` for a collapsed rank
 * (innermost dim first; the outermost needs no modulo).
 */
export function broadcastOffsetsWgsl(rank: number, inputs: number): string {
  const ks = Array.from({ length: inputs }, (_, k) => k);
  const lines = [`var rem = i;`, ...ks.map((k) => `var o${k} = 0u;`)];
  for (let j = 0; j < rank; j++) {
    lines.push(j === rank - 1 ? `{ let c = rem;` : `{ let c = rem % u.d${j}; rem = rem / u.d${j};`);
    lines.push(`  ${ks.map((k) => `o${k} += c * u.s${k}_${j};`).join(' ')} }`);
  }
  return lines.join('\n  ');
}

/** Collapses a broadcast and rejects ranks the kernels do not unroll. */
export function collapseBroadcast(
  what: string,
  outShape: readonly number[],
  shapes: readonly (readonly number[])[],
): Collapsed {
  const c = collapseDims(outShape, shapes.map((s) => broadcastStrides(s, outShape)));
  if (c.dims.length > ELEMENTWISE_MAX_RANK) {
    throw new Error(
      `${what}: broadcast needs ${c.dims.length} dimensions after collapsing, more than ${ELEMENTWISE_MAX_RANK} ` +
        `(shapes ${shapes.map(fmtShape).join(' and ')})`,
    );
  }
  return c;
}

/** True when the collapse is one contiguous run for every input (equal shapes up to leading 1s). */
export const isSameShape = (c: Collapsed): boolean => c.dims.length === 1 && c.strides.every((s) => s[0] === 1);

interface BcastParams {
  op: BinaryOp | 'where';
  rank: number;
  /** The innermost collapsed dim is a multiple of 4: each invocation does 4 neighbours of one run. */
  quad: boolean;
}

function broadcastKernel(name: string, inputs: readonly string[]) {
  return defineKernel({
    name,
    bindings: [
      ...inputs.map((x) => ({ name: x, type: 'array<f32>', access: 'read' as const })), // broadcast to (N,)
      { name: 'out', type: 'array<f32>', access: 'read_write' }, // (N,)
    ],
    uniforms: broadcastUniforms(inputs.length),
    workgroupSize: () => [ELEMENTWISE_WG],
    dispatch: (p: BcastParams, u) => {
      const n = (u as Record<string, number>).n!;
      return grid1d(Math.ceil((p.quad ? n / 4 : n) / ELEMENTWISE_WG));
    },
    key: (p: BcastParams) => `${p.op}|r${p.rank}|${p.quad ? 'q' : '1'}`,
    wgsl: (p: BcastParams) => {
      const call = (lane: number) =>
        `ew_op(${inputs.map((x, k) => (lane === 0 ? `${x}[o${k}]` : `${x}[o${k} + ${lane}u * u.s${k}_0]`)).join(', ')})`;
      // quad: elements i .. i + 3 share every coordinate but the innermost, so one index decomposition
      // serves all four (the integer div/mod chain is the broadcast kernel's main cost).
      const store = p.quad
        ? [0, 1, 2, 3].map((l) => `out[i + ${l}u] = ${call(l)};`).join('\n  ')
        : `out[i] = ${call(0)};`;
      return /* wgsl */ `${ELEMENTWISE_WGSL_LIB}
fn ew_op(${inputs.map((x) => `${x}: f32`).join(', ')}) -> f32 { return ${p.op === 'where' ? WHERE_WGSL : BINARY_WGSL[p.op]}; }
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (gid.x + gid.y * nwg.x * WG_X)${p.quad ? ' * 4u' : ''};
  if (i >= u.n) { return; }
  ${broadcastOffsetsWgsl(p.rank, inputs.length)}
  ${store}
}`;
    },
  });
}

function sameShapeKernel(name: string, inputs: readonly string[]) {
  return defineKernel({
    name,
    bindings: [
      ...inputs.map((x) => ({ name: x, type: 'array<vec4<f32>>', access: 'read' as const })), // (N/4,)
      { name: 'out', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
    ],
    uniforms: [{ name: 'n4', type: 'u32' }],
    workgroupSize: () => [ELEMENTWISE_WG],
    dispatch: (_p: { op: BinaryOp | 'where' }, u) => grid1d(Math.ceil(u.n4 / ELEMENTWISE_WG)),
    key: (p: { op: BinaryOp | 'where' }) => p.op,
    wgsl: (p: { op: BinaryOp | 'where' }) => `${ELEMENTWISE_WGSL_LIB}
fn ew_op(${inputs.map((x) => `${x}: f32`).join(', ')}) -> f32 { return ${p.op === 'where' ? WHERE_WGSL : BINARY_WGSL[p.op]}; }
${mapVec4Wgsl(inputs, 'ew_op', false)}`,
  });
}

export const binaryKernel = sameShapeKernel('elementwise_binary', ['a', 'b']);
export const binaryBroadcastKernel = broadcastKernel('elementwise_binary_broadcast', ['a', 'b']);
export const whereKernel = sameShapeKernel('elementwise_where', ['c', 'a', 'b']);
export const whereBroadcastKernel = broadcastKernel('elementwise_where_broadcast', ['c', 'a', 'b']);

// ------------------------------------------------------------------ host functions

export interface BinaryOptions {
  aShape: readonly number[];
  bShape: readonly number[];
}

/** out = a ∘ b with broadcasting; the output shape is `broadcastShapes(what, aShape, bShape)`. */
export function binaryForward(rt: Runtime, op: BinaryOp, a: GpuBuffer, b: GpuBuffer, options: BinaryOptions): GpuBuffer {
  const what = `binary ${op}`;
  if (!(op in BINARY_WGSL)) throw new Error(`binary: unknown op '${String(op)}'`);
  const { aShape, bShape } = options;
  const outShape = broadcastShapes(what, aShape, bShape);
  checkBuffer(what, 'a', a, aShape);
  checkBuffer(what, 'b', b, bShape);
  const n = numel(outShape);
  const out = rt.createBuffer(n * 4);
  if (n === 0) return out;
  const c = collapseBroadcast(what, outShape, [aShape, bShape]);
  if (isSameShape(c)) {
    assertVec4(what, a, b, out);
    rt.dispatch(binaryKernel, { op }, { buffers: { a, b, out }, uniforms: { n4: Math.ceil(n / 4) } });
  } else {
    rt.dispatch(binaryBroadcastKernel, { op, rank: c.dims.length, quad: c.dims[0]! % 4 === 0 }, {
      buffers: { a, b, out },
      uniforms: broadcastUniformValues(n, c) as never,
    });
  }
  return out;
}

export interface WhereOptions {
  condShape: readonly number[];
  aShape: readonly number[];
  bShape: readonly number[];
}

/** out = cond ≠ 0 ? a : b, all three broadcast together. */
export function whereForward(rt: Runtime, cond: GpuBuffer, a: GpuBuffer, b: GpuBuffer, options: WhereOptions): GpuBuffer {
  const what = 'where';
  const { condShape, aShape, bShape } = options;
  const outShape = broadcastShapes(what, condShape, aShape, bShape);
  checkBuffer(what, 'cond', cond, condShape);
  checkBuffer(what, 'a', a, aShape);
  checkBuffer(what, 'b', b, bShape);
  const n = numel(outShape);
  const out = rt.createBuffer(n * 4);
  if (n === 0) return out;
  const c = collapseBroadcast(what, outShape, [condShape, aShape, bShape]);
  if (isSameShape(c)) {
    assertVec4(what, cond, a, b, out);
    rt.dispatch(whereKernel, { op: 'where' }, { buffers: { c: cond, a, b, out }, uniforms: { n4: Math.ceil(n / 4) } });
  } else {
    rt.dispatch(whereBroadcastKernel, { op: 'where', rank: c.dims.length, quad: c.dims[0]! % 4 === 0 }, {
      buffers: { c: cond, a, b, out },
      uniforms: broadcastUniformValues(n, c) as never,
    });
  }
  return out;
}

// ------------------------------------------------------------------ fused bias + gelu

export type GeluApproximation = 'tanh' | 'erf';

interface BiasGeluParams {
  approximate: GeluApproximation;
}

const MAX_DIM = 65535;

/**
 * vec4 = true reads x, bias and out as vec4<f32> (needs C % 4 == 0). The grid is 2-D so the channel
 * comes straight from gid.x (no per-element modulo): x covers the C (or C/4) columns, y and z the rows.
 */
function biasGeluKernel(vec4: boolean) {
  const t = vec4 ? 'array<vec4<f32>>' : 'array<f32>';
  return defineKernel({
    name: vec4 ? 'elementwise_bias_gelu_vec4' : 'elementwise_bias_gelu',
    bindings: [
      { name: 'x', type: t, access: 'read' }, // (N/C, C)
      { name: 'bias', type: t, access: 'read' }, // (C,)
      { name: 'out', type: t, access: 'read_write' }, // (N/C, C)
    ],
    uniforms: [
      { name: 'rows', type: 'u32' }, // N / C
      { name: 'c', type: 'u32' }, // channels (vec4s per row when vec4)
    ],
    workgroupSize: () => [ELEMENTWISE_WG],
    dispatch: (_p, u) => {
      const z = Math.ceil(u.rows / MAX_DIM);
      return [Math.ceil(u.c / ELEMENTWISE_WG), Math.ceil(u.rows / z), z];
    },
    key: (p: BiasGeluParams) => p.approximate,
    wgsl: (p: BiasGeluParams) => {
      const g = p.approximate === 'tanh' ? 'ew_gelu_tanh' : 'ew_gelu_erf';
      const body = vec4
        ? `let v = x[i] + bias[col];
  out[i] = vec4<f32>(${g}(v.x), ${g}(v.y), ${g}(v.z), ${g}(v.w));`
        : `out[i] = ${g}(x[i] + bias[col]);`;
      return /* wgsl */ `${ELEMENTWISE_WGSL_LIB}
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let col = gid.x;
  let row = gid.y + gid.z * nwg.y;
  if (col >= u.c || row >= u.rows) { return; }
  let i = row * u.c + col;
  ${body}
}`;
    },
  });
}

export const biasGeluVec4Kernel = biasGeluKernel(true);
export const biasGeluScalarKernel = biasGeluKernel(false);

export interface BiasGeluOptions {
  /** Shape of x; the last axis is C and bias has C elements. */
  shape: readonly number[];
  /** 'tanh' (default, GPT-2's gelu) or 'erf' (exact). */
  approximate?: GeluApproximation;
}

/**
 * out = gelu(x + bias), bias broadcast along the last axis, in one pass (one read of x, one write).
 * Saves nothing; the backward is unaryBackward('gelu' or 'gelu_erf', x + bias, dy), and reduceToShape of
 * that to [C] for the bias.
 */
export function biasGeluForward(rt: Runtime, x: GpuBuffer, bias: GpuBuffer, options: BiasGeluOptions): GpuBuffer {
  const { shape, approximate = 'tanh' } = options;
  const what = 'bias_gelu';
  const C = shape.at(-1);
  if (C === undefined) throw new Error(`${what}: x must have at least one axis (shape ${fmtShape(shape)})`);
  checkBuffer(what, 'x', x, shape);
  checkBuffer(what, 'bias', bias, [C]);
  const n = numel(shape);
  const out = rt.createBuffer(n * 4);
  if (n === 0) return out;
  if (C % 4 === 0) {
    assertVec4(what, x, bias, out);
    rt.dispatch(biasGeluVec4Kernel, { approximate }, { buffers: { x, bias, out }, uniforms: { rows: n / C, c: C / 4 } });
  } else {
    rt.dispatch(biasGeluScalarKernel, { approximate }, { buffers: { x, bias, out }, uniforms: { rows: n / C, c: C } });
  }
  return out;
}
