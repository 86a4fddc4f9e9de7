/**
 * Neural-network ops over the fused kernels of @keel/kernels, with their backward rules:
 * softmax / logSoftmax (last axis, optional causal mask), crossEntropy (mean over non-ignored rows),
 * layerNorm and rmsNorm (last axis, any leading shape), embedding (row lookup), and linear
 * (y = x·Wᵀ + b, W stored (out, in) as in Hugging Face checkpoints; the bias is the matmul epilogue).
 *
 * Dimension legend: N rows (all leading axes flattened), C channels (the last axis), V vocabulary
 * (classes or table rows), R rows of a linear layer's input, in/out its feature counts.
 * Non-goals: softmax over other axes (permute first), label smoothing, class weights, padding_idx.
 */
import {
  crossEntropyBackward,
  crossEntropyForward,
  embeddingBackward,
  embeddingForward,
  layerNormBackward,
  layerNormForward,
  logSoftmaxBackward,
  logSoftmaxForward,
  matmul as matmulKernel,
  matmulBackward,
  rmsNormBackward,
  rmsNormForward,
  softmaxBackward,
  softmaxForward,
  type SoftmaxKind,
} from '@keel/kernels';
import { record, untracked } from '../tape.js';
import { Tensor, numel } from '../tensor.js';
import type { RuleTable } from './registry.js';
import { assertDType, fmtShapes, saveOrRelease, savedBuffer, willRecord } from './saved.js';

const wrap = (like: Tensor, buf: Parameters<typeof Tensor.fromBuffer>[1], shape: readonly number[]) => Tensor.fromBuffer(like.rt, buf, shape);

// ------------------------------------------------------------------ softmax

export interface SoftmaxOptions {
  /** Mask columns c > (row mod T) of a (…, T, T) input (attention scores). Default false. */
  causal?: boolean;
}

function softmaxOp(kind: SoftmaxKind, x: Tensor, o: SoftmaxOptions): Tensor {
  assertDType(kind, 'x', x, 'f32', fmtShapes({ x }));
  if (x.rank === 0) throw new Error(`${kind}: needs rank ≥ 1, got shape [${x.shape}]`);
  const causal = o.causal ?? false;
  const fwd = kind === 'softmax' ? softmaxForward : logSoftmaxForward;
  const y = wrap(x, fwd(x.rt, x.buffer, x.shape, { causal }), x.shape);
  return record(y, 'softmax', [x], { kind, causal, y });
}

/** softmax over the last axis. */
export const softmax = (x: Tensor, o: SoftmaxOptions = {}): Tensor => softmaxOp('softmax', x, o);
/** log-softmax over the last axis (masked entries are -Infinity with `causal`). */
export const logSoftmax = (x: Tensor, o: SoftmaxOptions = {}): Tensor => softmaxOp('logSoftmax', x, o);

// ------------------------------------------------------------------ cross-entropy

export interface CrossEntropyOptions {
  /** Target value marking a row to skip (no loss, not counted). Default -100 (PyTorch). */
  ignoreIndex?: number;
}

/**
 * Mean cross-entropy of softmax(logits) against integer targets: logits (…, V) f32, targets (…) i32
 * with the same leading shape. Returns a scalar (shape []); NaN when every row is ignored.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, o: CrossEntropyOptions = {}): Tensor {
  const shapes = fmtShapes({ logits, targets });
  assertDType('crossEntropy', 'logits', logits, 'f32', shapes);
  assertDType('crossEntropy', 'targets', targets, 'i32', shapes);
  if (logits.rank < 2 || targets.shape.join() !== logits.shape.slice(0, -1).join()) {
    throw new Error(`crossEntropy: logits must be (…, V) and targets (…) with the same leading shape (${shapes})`);
  }
  const ignoreIndex = o.ignoreIndex ?? -100;
  const V = logits.shape[logits.rank - 1]!;
  const shape = [targets.size, V] as const;
  const rt = logits.rt;
  const r = crossEntropyForward(rt, logits.buffer, targets.buffer, shape, { ignoreIndex });
  rt.release(r.rowLoss);
  const keep = willRecord([logits]);
  const lse = saveOrRelease(rt, r.lse, [shape[0]], keep);
  const count = saveOrRelease(rt, r.count, [1], keep);
  const loss = Tensor.fromBuffer(rt, r.loss, []);
  return keep ? record(loss, 'crossEntropy', [logits, targets], { shape, ignoreIndex, lse: lse!, count: count! }) : untracked(loss, 'crossEntropy', [logits, targets]);
}

// ------------------------------------------------------------------ layerNorm / rmsNorm

export interface NormOptions {
  /** Added to the variance (layerNorm, default 1e-5) or the mean square (rmsNorm, default 1e-6). */
  eps?: number;
}

function normShape(op: string, x: Tensor, params: Record<string, Tensor | null | undefined>): readonly [number, number] {
  const shapes = fmtShapes({ x, ...params });
  assertDType(op, 'x', x, 'f32', shapes);
  if (x.rank === 0 || x.shape[x.rank - 1] === 0) throw new Error(`${op}: x needs a non-empty last axis (${shapes})`);
  const C = x.shape[x.rank - 1]!;
  for (const [name, p] of Object.entries(params)) {
    if (!p) continue;
    assertDType(op, name, p, 'f32', shapes);
    if (p.rank !== 1 || p.shape[0] !== C) throw new Error(`${op}: ${name} must have shape [${C}] (${shapes})`);
  }
  return [x.size / C, C];
}

/** LayerNorm over the last axis of x (any leading shape); weight and bias (C,) are optional. */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, o: NormOptions = {}): Tensor {
  const shape = normShape('layerNorm', x, { weight, bias });
  const r = layerNormForward(x.rt, x.buffer, weight?.buffer ?? null, bias?.buffer ?? null, { shape, ...(o.eps !== undefined ? { eps: o.eps } : {}) });
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  const keep = willRecord(inputs);
  const mean = saveOrRelease(x.rt, r.mean, [shape[0]], keep);
  const rstd = saveOrRelease(x.rt, r.rstd, [shape[0]], keep);
  const y = wrap(x, r.y, x.shape);
  if (!keep) return untracked(y, 'layerNorm', inputs);
  return record(y, 'layerNorm', inputs, { shape, hasWeight: !!weight, hasBias: !!bias, mean: mean!, rstd: rstd! });
}

/** RMSNorm over the last axis of x (any leading shape); weight (C,) is optional. */
export function rmsNorm(x: Tensor, weight: Tensor | null = null, o: NormOptions = {}): Tensor {
  const shape = normShape('rmsNorm', x, { weight });
  const r = rmsNormForward(x.rt, x.buffer, weight?.buffer ?? null, { shape, ...(o.eps !== undefined ? { eps: o.eps } : {}) });
  const inputs = [x, ...(weight ? [weight] : [])];
  const keep = willRecord(inputs);
  const rstd = saveOrRelease(x.rt, r.rstd, [shape[0]], keep);
  const y = wrap(x, r.y, x.shape);
  return keep ? record(y, 'rmsNorm', inputs, { shape, hasWeight: !!weight, rstd: rstd! }) : untracked(y, 'rmsNorm', inputs);
}

// ------------------------------------------------------------------ embedding

/** out (…, C) = table (V, C)[ids (…)]; ids are i32 (out-of-range ids give NaN rows, no gradient). */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  const shapes = fmtShapes({ table, ids });
  assertDType('embedding', 'table', table, 'f32', shapes);
  assertDType('embedding', 'ids', ids, 'i32', shapes);
  if (table.rank !== 2) throw new Error(`embedding: table must be (V, C) (${shapes})`);
  const shape = [table.shape[0]!, table.shape[1]!] as const;
  const out = wrap(table, embeddingForward(table.rt, table.buffer, ids.buffer, { shape }), [...ids.shape, shape[1]]);
  return record(out, 'embedding', [table, ids], { shape });
}

// ------------------------------------------------------------------ linear

/** y (…, out) = x (…, in) · Wᵀ + bias, with W stored (out, in); bias (out,) fused into the matmul. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const shapes = fmtShapes({ x, weight, bias });
  for (const [n, t] of [['x', x], ['weight', weight], ['bias', bias]] as const) if (t) assertDType('linear', n, t, 'f32', shapes);
  const inFeatures = x.shape[x.rank - 1];
  if (x.rank === 0 || weight.rank !== 2 || weight.shape[1] !== inFeatures) {
    throw new Error(`linear: x must be (…, in) and weight (out, in) with the same in (${shapes})`);
  }
  const outFeatures = weight.shape[0]!;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outFeatures)) throw new Error(`linear: bias must have shape [${outFeatures}] (${shapes})`);
  const rows = numel(x.shape.slice(0, -1));
  const outShape = [...x.shape.slice(0, -1), outFeatures];
  const buf = matmulKernel(x.rt, x.buffer, weight.buffer, {
    batch: 1,
    m: rows,
    n: outFeatures,
    k: inFeatures!,
    transB: true,
    ...(bias ? { bias: bias.buffer } : {}),
  });
  const inputs = [x, weight, ...(bias ? [bias] : [])];
  return record(wrap(x, buf, outShape), 'linear', inputs, { rows, inFeatures: inFeatures!, outFeatures, hasBias: !!bias });
}

// ------------------------------------------------------------------ backward rules

type NnOps = 'softmax' | 'crossEntropy' | 'layerNorm' | 'rmsNorm' | 'embedding' | 'linear';

export const nnRules: RuleTable<NnOps> = {
  softmax(dy, ctx) {
    const bwd = ctx.kind === 'softmax' ? softmaxBackward : logSoftmaxBackward;
    const y = savedBuffer(ctx.kind, ctx.y, 'output');
    return [wrap(dy, bwd(dy.rt, y, dy.buffer, ctx.y.shape, { causal: ctx.causal }), ctx.y.shape)];
  },
  crossEntropy(dy, ctx, [logits, targets]) {
    const saved = { lse: savedBuffer('crossEntropy', ctx.lse, 'lse'), count: savedBuffer('crossEntropy', ctx.count, 'count') };
    const g = crossEntropyBackward(dy.rt, logits!.buffer, targets!.buffer, saved, dy.buffer, ctx.shape, { ignoreIndex: ctx.ignoreIndex });
    return [wrap(dy, g, logits!.shape), null];
  },
  layerNorm(dy, ctx, inputs) {
    const x = inputs[0]!;
    const w = ctx.hasWeight ? inputs[1]! : null;
    const mean = savedBuffer('layerNorm', ctx.mean, 'mean');
    const rstd = savedBuffer('layerNorm', ctx.rstd, 'rstd');
    const g = layerNormBackward(dy.rt, dy.buffer, x.buffer, w?.buffer ?? null, mean, rstd, { shape: ctx.shape, bias: ctx.hasBias });
    const C = [ctx.shape[1]];
    return [wrap(dy, g.dx, x.shape), ...(g.dweight ? [wrap(dy, g.dweight, C)] : []), ...(g.dbias ? [wrap(dy, g.dbias, C)] : [])];
  },
  rmsNorm(dy, ctx, inputs) {
    const x = inputs[0]!;
    const w = ctx.hasWeight ? inputs[1]! : null;
    const g = rmsNormBackward(dy.rt, dy.buffer, x.buffer, w?.buffer ?? null, savedBuffer('rmsNorm', ctx.rstd, 'rstd'), { shape: ctx.shape });
    return [wrap(dy, g.dx, x.shape), ...(g.dweight ? [wrap(dy, g.dweight, [ctx.shape[1]])] : [])];
  },
  embedding(dy, ctx, [table, ids]) {
    return [wrap(dy, embeddingBackward(dy.rt, dy.buffer, ids!.buffer, { shape: ctx.shape }), table!.shape), null];
  },
  linear(dy, ctx, [x, w, b]) {
    const g = matmulBackward(dy.rt, x!.buffer, w!.buffer, dy.buffer, {
      batch: 1,
      m: ctx.rows,
      n: ctx.outFeatures,
      k: ctx.inFeatures,
      transB: true,
      needA: x!.requiresGrad,
      needB: w!.requiresGrad,
      needBias: ctx.hasBias && b!.requiresGrad,
    });
    return [
      g.dA ? wrap(dy, g.dA, x!.shape) : null,
      g.dB ? wrap(dy, g.dB, w!.shape) : null,
      ...(ctx.hasBias ? [g.dBias ? wrap(dy, g.dBias, b!.shape) : null] : []),
    ];
  },
};
