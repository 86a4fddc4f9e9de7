/**
 * Elementwise kernels, part 3: gradients.
 *
 * - unaryBackward(op, x, dy): dx = dy · f'(x) in one vec4 pass, from a derivative table keyed by
 *   `UnaryOp` (a missing derivative is a type error). relu'(0) = 0, abs'(0) = 0.
 * - reduceToShape(x, fromShape, toShape): sums a broadcast gradient back to the input's shape.
 *   Each output element is a blocked sum (each block summed in 4 interleaved lanes, then pairwise): level 1 splits its R inputs into C = ceil(R / BLOCK)
 *   interleaved partial sums of ≤ BLOCK terms each (partial c takes inputs c, c + C, c + 2C, ...), and
 *   the [M, C] partials are reduced the same way until C = 1. Error grows like BLOCK · log_BLOCK(R)
 *   rather than R, and level 1 exposes M · C threads even when M = 1.
 * - binaryBackward(op, a, b, dy): one broadcast pass writes dy · ∂f/∂a and dy · ∂f/∂b at the output
 *   shape, then each is reduced to its input's shape (skipped when already that size).
 *   maximum/minimum split the gradient equally on ties; pow's ∂/∂b is 0 where a = 0 and b ≥ 0.
 *
 * Non-goals: gradients of comparisons and where (zero / selection; callers mask directly).
 *
 * Dimension legend: N elements of the broadcast output, M elements of the reduced output,
 * R elements summed into each output, C partial sums per output.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, grid1d } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import {
  ELEMENTWISE_MAX_RANK,
  ELEMENTWISE_WG,
  ELEMENTWISE_WGSL_LIB,
  UNARY_WGSL,
  assertVec4,
  broadcastShapes,
  checkBuffer,
  elementCount,
  fmtShape,
  mapVec4Wgsl,
  numel,
  scalarOperand,
  type UnaryOp,
  type UnaryOptions,
} from './elementwise.js';
import {
  broadcastOffsetsWgsl,
  broadcastUniformValues,
  broadcastUniforms,
  collapseBroadcast,
  type BinaryOp,
} from './elementwise-binary.js';

// ------------------------------------------------------------------ unary backward

/** f'(x) (s = the scalar operand) as a WGSL f32 expression. */
export const UNARY_GRAD_WGSL: { readonly [K in UnaryOp]: string } = {
  neg: '-1.0',
  exp: 'exp(x)',
  log: '1.0 / x',
  sqrt: '0.5 / sqrt(x)',
  rsqrt: '-0.5 / (x * sqrt(x))',
  abs: 'ew_sign(x)',
  relu: 'select(0.0, 1.0, x > 0.0)',
  gelu: 'ew_gelu_tanh_grad(x)',
  gelu_erf: 'ew_gelu_erf_grad(x)',
  silu: 'ew_silu_grad(x)',
  sigmoid: 'ew_sigmoid_grad(x)',
  tanh: 'ew_tanh_grad(x)',
  add_scalar: '1.0',
  sub_scalar: '1.0',
  rsub_scalar: '-1.0',
  mul_scalar: 's',
  div_scalar: '1.0 / s',
  rdiv_scalar: '-s / (x * x)',
  pow_scalar: 'select(s * ew_pow(x, s - 1.0), 0.0, s == 0.0)',
};

export const unaryBackwardKernel = defineKernel({
  name: 'elementwise_unary_backward',
  bindings: [
    { name: 'x', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,) forward input
    { name: 'dy', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'out', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,) dx
  ],
  uniforms: [
    { name: 'n4', type: 'u32' },
    { name: 's', type: 'f32' },
  ],
  workgroupSize: () => [ELEMENTWISE_WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n4 / ELEMENTWISE_WG)),
  key: (p: { op: UnaryOp }) => p.op,
  wgsl: (p) => `${ELEMENTWISE_WGSL_LIB}
fn ew_dx(x: f32, dy: f32, s: f32) -> f32 { return dy * (${UNARY_GRAD_WGSL[p.op]}); }
${mapVec4Wgsl(['x', 'dy'], 'ew_dx', true)}`,
});

/** dx = dy · f'(x) for the forward `unaryForward(op, x)` (same n and scalar). */
export function unaryBackward(rt: Runtime, op: UnaryOp, x: GpuBuffer, dy: GpuBuffer, options: UnaryOptions = {}): GpuBuffer {
  const what = `unary ${op} backward`;
  if (!(op in UNARY_WGSL)) throw new Error(`unary backward: unknown op '${String(op)}'`);
  const s = scalarOperand(what, op, options.scalar);
  const n = elementCount(what, x, options.n);
  elementCount(what, dy, n);
  const out = rt.createBuffer(n * 4);
  if (n === 0) return out;
  assertVec4(what, x, dy, out);
  rt.dispatch(unaryBackwardKernel, { op }, { buffers: { x, dy, out }, uniforms: { n4: Math.ceil(n / 4), s } });
  return out;
}

// ------------------------------------------------------------------ reduceToShape

/** Terms per partial sum at each level. */
export const REDUCE_BLOCK = 64;

interface ReduceParams {
  keptRank: number;
  redRank: number;
  /** Partial index c varies fastest across invocations (the reduced axis is the contiguous one). */
  cFast: boolean;
}

const KEPT = Array.from({ length: ELEMENTWISE_MAX_RANK }, (_, j) => j);

/** WGSL: decomposes `idx` over dims `${p}d{j}` (innermost first) into offset `${p}off`. */
function decomposeWgsl(prefix: string, rank: number, idx: string): string {
  const lines = [`var ${prefix}off = 0u;`, `var ${prefix}rem = ${idx};`];
  for (let j = 0; j < rank; j++) {
    const c = j === rank - 1 ? `${prefix}rem` : `${prefix}rem % u.${prefix}d${j}`;
    lines.push(`${prefix}off += (${c}) * u.${prefix}s${j};`);
    if (j < rank - 1) lines.push(`${prefix}rem = ${prefix}rem / u.${prefix}d${j};`);
  }
  return lines.join('\n  ');
}

export const reduceToShapeKernel = defineKernel({
  name: 'elementwise_reduce_to_shape',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (N,) = kept × reduced, strided
    { name: 'out', type: 'array<f32>', access: 'read_write' }, // (M, C) or (C, M), see cFast
  ],
  uniforms: [
    { name: 'm', type: 'u32' }, // kept elements
    { name: 'r', type: 'u32' }, // reduced elements per output
    { name: 'c', type: 'u32' }, // partials per output = ceil(r / BLOCK)
    ...KEPT.flatMap((j) => [
      { name: `kd${j}` as const, type: 'u32' as const },
      { name: `ks${j}` as const, type: 'u32' as const },
      { name: `rd${j}` as const, type: 'u32' as const },
      { name: `rs${j}` as const, type: 'u32' as const },
    ]),
  ],
  workgroupSize: () => [ELEMENTWISE_WG],
  dispatch: (_p, u) => grid1d(Math.ceil((u.m * u.c) / ELEMENTWISE_WG)),
  key: (p: ReduceParams) => `k${p.keptRank}|r${p.redRank}|${p.cFast ? 'c' : 'm'}`,
  wgsl: (p: ReduceParams) => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = gid.x + gid.y * nwg.x * WG_X; // output slot: o * c + p (cFast) or p * m + o
  if (t >= u.m * u.c) { return; }
  let o = ${p.cFast ? 't / u.c' : 't % u.m'};
  let part = ${p.cFast ? 't % u.c' : 't / u.m'};
  ${p.keptRank === 0 ? 'let koff = 0u;' : decomposeWgsl('k', p.keptRank, 'o')}
  // Four interleaved accumulators (term q goes to lane q % 4): serial chains of BLOCK / 4 adds.
  var acc = vec4<f32>(0.0);
  for (var q = 0u; q < ${REDUCE_BLOCK}u; q += 4u) {
    if (part + q * u.c >= u.r) { break; }
    ${[0, 1, 2, 3].map((k) => `{
      let j = part + (q + ${k}u) * u.c; // this partial's (q + ${k})-th term
      if (j < u.r) {
        ${p.redRank === 0 ? 'let roff = 0u;' : decomposeWgsl('r', p.redRank, 'j')}
        acc[${k}] += x[koff + roff];
      }
    }`).join('\n    ')}
  }
  out[t] = (acc.x + acc.y) + (acc.z + acc.w);
}`,
});

interface Axes {
  dims: number[];
  strides: number[];
}

/** Merges adjacent axes (outermost first in, innermost first out) that are one contiguous run. */
function mergeAxes(dims: number[], strides: number[]): Axes {
  const d: number[] = [];
  const s: number[] = [];
  dims.forEach((n, i) => {
    const last = d.length - 1;
    if (last >= 0 && s[last] === strides[i]! * n) {
      d[last]! *= n;
      s[last] = strides[i]!;
    } else {
      d.push(n);
      s.push(strides[i]!);
    }
  });
  return { dims: d.reverse(), strides: s.reverse() };
}

function reduceLevel(rt: Runtime, x: GpuBuffer, kept: Axes, red: Axes): { out: GpuBuffer; c: number; cFast: boolean } {
  const m = numel(kept.dims);
  const r = numel(red.dims);
  const c = Math.max(1, Math.ceil(r / REDUCE_BLOCK));
  // Neighbouring invocations should touch neighbouring addresses: reduced-innermost → c fastest.
  const cFast = red.strides.length > 0 && (kept.strides.length === 0 || Math.min(...red.strides) < Math.min(...kept.strides));
  const out = rt.createBuffer(m * c * 4);
  const u: Record<string, number> = { m, r, c };
  for (const j of KEPT) {
    u[`kd${j}`] = kept.dims[j] ?? 1;
    u[`ks${j}`] = kept.strides[j] ?? 0;
    u[`rd${j}`] = red.dims[j] ?? 1;
    u[`rs${j}`] = red.strides[j] ?? 0;
  }
  rt.dispatch(reduceToShapeKernel, { keptRank: kept.dims.length, redRank: red.dims.length, cFast }, {
    buffers: { x, out },
    uniforms: u as never,
  });
  return { out, c, cFast };
}

/**
 * Sums x (shape `fromShape`) over the axes where `toShape` (broadcastable to fromShape) has 1 or is
 * missing: the gradient of a broadcast. Returns a new buffer of numel(toShape) elements.
 */
export function reduceToShape(rt: Runtime, x: GpuBuffer, fromShape: readonly number[], toShape: readonly number[]): GpuBuffer {
  const what = 'reduceToShape';
  const bad = () => new Error(`${what}: cannot reduce shape ${fmtShape(fromShape)} to ${fmtShape(toShape)}`);
  let joint: number[];
  try {
    joint = broadcastShapes(what, fromShape, toShape);
  } catch {
    throw bad();
  }
  if (joint.length !== fromShape.length || joint.some((d, i) => d !== fromShape[i])) throw bad();
  checkBuffer(what, 'x', x, fromShape);
  const m = numel(toShape);
  const n = numel(fromShape);
  if (m === 0) return rt.createBuffer(0);
  if (m === n) {
    const out = rt.createBuffer(m * 4);
    rt.copy(x, out, m * 4);
    return out;
  }
  // Split x's axes into kept (toShape has the size) and reduced (toShape has 1 or nothing).
  const off = fromShape.length - toShape.length;
  const kd: number[] = [], ks: number[] = [], rd: number[] = [], rs: number[] = [];
  let stride = 1;
  const strides = fromShape.map(() => 0);
  for (let i = fromShape.length - 1; i >= 0; i--) {
    strides[i] = stride;
    stride *= fromShape[i]!;
  }
  fromShape.forEach((d, i) => {
    if (d === 1) return;
    if ((toShape[i - off] ?? 1) === d) {
      kd.push(d);
      ks.push(strides[i]!);
    } else {
      rd.push(d);
      rs.push(strides[i]!);
    }
  });
  let kept = mergeAxes(kd, ks);
  let red = mergeAxes(rd, rs);
  if (kept.dims.length > ELEMENTWISE_MAX_RANK || red.dims.length > ELEMENTWISE_MAX_RANK) {
    throw new Error(`${what}: more than ${ELEMENTWISE_MAX_RANK} alternating axes (shapes ${fmtShape(fromShape)} and ${fmtShape(toShape)})`);
  }
  let src = x;
  for (;;) {
    const { out, c, cFast } = reduceLevel(rt, src, kept, red);
    if (src !== x) rt.release(src);
    if (c === 1) return out;
    // Partials are [M, C] (cFast) or [C, M]; reduce over C next.
    src = out;
    kept = { dims: [m], strides: [cFast ? c : 1] };
    red = { dims: [c], strides: [cFast ? 1 : m] };
  }
}

// ------------------------------------------------------------------ binary backward

/** Differentiable binary ops. */
export type DiffBinaryOp = Extract<BinaryOp, 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum'>;

/** (∂f/∂a, ∂f/∂b) at (a, b) as a WGSL vec2<f32> expression. */
export const BINARY_GRAD_WGSL: { readonly [K in DiffBinaryOp]: string } = {
  add: 'vec2<f32>(1.0, 1.0)',
  sub: 'vec2<f32>(1.0, -1.0)',
  mul: 'vec2<f32>(b, a)',
  div: 'vec2<f32>(1.0 / b, -a / (b * b))',
  pow: 'vec2<f32>(select(b * ew_pow(a, b - 1.0), 0.0, b == 0.0), select(ew_pow(a, b) * log(a), 0.0, a == 0.0 && b >= 0.0))',
  maximum: 'ew_pick(select(select(0.0, 1.0, a > b), 0.5, a == b))',
  minimum: 'ew_pick(select(select(0.0, 1.0, a < b), 0.5, a == b))',
};

export const binaryBackwardKernel = defineKernel({
  name: 'elementwise_binary_backward',
  bindings: [
    { name: 'a', type: 'array<f32>', access: 'read' }, // broadcast to (N,)
    { name: 'b', type: 'array<f32>', access: 'read' }, // broadcast to (N,)
    { name: 'dy', type: 'array<f32>', access: 'read' }, // (N,)
    { name: 'ga', type: 'array<f32>', access: 'read_write' }, // (N,) dy · ∂f/∂a
    { name: 'gb', type: 'array<f32>', access: 'read_write' }, // (N,) dy · ∂f/∂b
  ],
  uniforms: broadcastUniforms(2),
  workgroupSize: () => [ELEMENTWISE_WG],
  dispatch: (_p, u) => grid1d(Math.ceil((u as Record<string, number>).n! / ELEMENTWISE_WG)),
  key: (p: { op: DiffBinaryOp; rank: number }) => `${p.op}|r${p.rank}`,
  wgsl: (p: { op: DiffBinaryOp; rank: number }) => /* wgsl */ `${ELEMENTWISE_WGSL_LIB}
// share w of the gradient to a, 1 - w to b
fn ew_pick(w: f32) -> vec2<f32> { return vec2<f32>(w, 1.0 - w); }
fn ew_grad(a: f32, b: f32) -> vec2<f32> { return ${BINARY_GRAD_WGSL[p.op]}; }
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i >= u.n) { return; }
  ${broadcastOffsetsWgsl(p.rank, 2)}
  let g = dy[i] * ew_grad(a[o0], b[o1]);
  ga[i] = g.x;
  gb[i] = g.y;
}`,
});

/** Gradients of `binaryForward(op, a, b, {aShape, bShape})` given dy (the output's shape). */
export function binaryBackward(
  rt: Runtime,
  op: DiffBinaryOp,
  a: GpuBuffer,
  b: GpuBuffer,
  dy: GpuBuffer,
  options: { aShape: readonly number[]; bShape: readonly number[] },
): { da: GpuBuffer; db: GpuBuffer } {
  const what = `binary ${op} backward`;
  if (!(op in BINARY_GRAD_WGSL)) throw new Error(`binary backward: op '${String(op)}' is not differentiable`);
  const { aShape, bShape } = options;
  const outShape = broadcastShapes(what, aShape, bShape);
  checkBuffer(what, 'a', a, aShape);
  checkBuffer(what, 'b', b, bShape);
  checkBuffer(what, 'dy', dy, outShape);
  const n = numel(outShape);
  const ga = rt.createBuffer(n * 4);
  const gb = rt.createBuffer(n * 4);
  if (n > 0) {
    const c = collapseBroadcast(what, outShape, [aShape, bShape]);
    rt.dispatch(binaryBackwardKernel, { op, rank: c.dims.length }, {
      buffers: { a, b, dy, ga, gb },
      uniforms: broadcastUniformValues(n, c) as never,
    });
  }
  const reduce = (g: GpuBuffer, shape: readonly number[]): GpuBuffer => {
    if (numel(shape) === n) return g;
    const r = reduceToShape(rt, g, outShape, shape);
    rt.release(g);
    return r;
  };
  return { da: reduce(ga, aShape), db: reduce(gb, bShape) };
}
