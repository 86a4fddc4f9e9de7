/**
 * Attention-block ops with backward rules: rope (rotary position embedding, the HF "rotate_half"
 * pairing) and attention (fused flash-style scaled-dot-product attention; the (B, H, Tq, Tk) score
 * matrix is never materialized, the backward recomputes it from the saved lse).
 *
 * Dimension legend: B batch, H query heads, Hkv key/value heads (H % Hkv = 0: grouped-query
 * attention), Tq query tokens, Tk key tokens, T tokens, D head dim (attention: a multiple of 4, at
 * most 128; rope: even). q (B, H, Tq, D), k and v (B, Hkv, Tk, D), out (B, H, Tq, D).
 * Non-goals: dropout, arbitrary attention bias tensors, gradients of the padding mask.
 */
import { attentionBackward, attentionForward, ropeBackward, ropeForward, type AttentionOptions, type RopeLayout } from '@keel/kernels';
import { record, untracked } from '../tape.js';
import { Tensor } from '../tensor.js';
import type { OpCtx, RuleTable } from './registry.js';
import { assertDType, fmtShapes, saveOrRelease, savedBuffer, willRecord } from './saved.js';

// ------------------------------------------------------------------ rope

export interface RopeOptions {
  /**
   * Axis order of x: 'BTHD' or 'BHTD' (what `attention` takes). Required: both are 4-D with the same
   * rank, so a wrong default would rotate along the wrong axis without any error.
   */
  layout: RopeLayout;
  /** Position of token t is offset + t (KV-cache decoding). Default 0. */
  offset?: number;
  /** Frequency base θ. Default 10000. */
  theta?: number;
}

/** Rotates each head vector's channel pairs (i, i + D/2) by (offset + t)·θ^(−2i/D). */
export function rope(x: Tensor, o: RopeOptions): Tensor {
  assertDType('rope', 'x', x, 'f32', fmtShapes({ x }));
  if (o?.layout !== 'BTHD' && o?.layout !== 'BHTD') {
    throw new Error(`rope: options.layout must be 'BTHD' or 'BHTD', got ${String(o?.layout)} (shape [${x.shape}])`);
  }
  if (x.rank !== 4) throw new Error(`rope: x must be 4-D ((B, T, H, D) or (B, H, T, D)), got shape [${x.shape}]`);
  const ctx: OpCtx['rope'] = {
    shape: [x.shape[0]!, x.shape[1]!, x.shape[2]!, x.shape[3]!],
    layout: o.layout,
    offset: o.offset ?? 0,
    theta: o.theta ?? 10000,
  };
  const out = Tensor.fromBuffer(x.rt, ropeForward(x.rt, x.buffer, ctx), x.shape);
  return record(out, 'rope', [x], ctx);
}

// ------------------------------------------------------------------ attention

export interface AttentionOpOptions {
  /** Query i (absolute position qOffset + i) attends to keys j ≤ qOffset + i. Default false. */
  causal?: boolean;
  /** Key/value heads; must equal k.shape[1] when given (checked), default k.shape[1]. */
  kvHeads?: number;
  /** Score scale; default 1/√D. */
  scale?: number;
  /** (B, Tk) f32 or i32 flags: nonzero = attend, 0 = padded. Not differentiable. */
  keyPadding?: Tensor;
  /** Absolute position of query 0 for the causal mask. Default 0. */
  qOffset?: number;
}

/**
 * out = softmax(q·kᵀ·scale + mask)·v per head. Rows that see no key (all padded) output 0.
 * Saves out and lse (B, H, Tq) for the backward.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOpOptions = {}): Tensor {
  const pad = o.keyPadding ?? null;
  const shapes = fmtShapes({ q, k, v, keyPadding: pad });
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) assertDType('attention', n, t, 'f32', shapes);
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) {
    throw new Error(`attention: q, k, v must be 4-D: q (B, H, Tq, D), k and v (B, Hkv, Tk, D) (${shapes})`);
  }
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const [Bk, Hkv, Tk, Dk] = k.shape as [number, number, number, number];
  if (k.shape.join() !== v.shape.join()) throw new Error(`attention: k and v shapes differ (${shapes})`);
  if (Dk !== D) throw new Error(`attention: head dim differs: q has D = ${D}, k/v have D = ${Dk} (${shapes})`);
  if (Bk !== B) throw new Error(`attention: batch differs: q has B = ${B}, k/v have B = ${Bk} (${shapes})`);
  if (o.kvHeads !== undefined && o.kvHeads !== Hkv) throw new Error(`attention: kvHeads = ${o.kvHeads} but k/v have ${Hkv} heads (${shapes})`);
  if (Hkv === 0 ? H !== 0 : H % Hkv !== 0) throw new Error(`attention: query heads (${H}) must be a multiple of kv heads (${Hkv}) (${shapes})`);
  if (pad) {
    if (pad.isDisposed) throw new Error(`attention: keyPadding tensor #${pad.id} was disposed`);
    if (pad.shape.join() !== [B, Tk].join()) throw new Error(`attention: keyPadding must have shape [${B},${Tk}] (${shapes})`);
  }
  const opts: AttentionOptions = {
    batch: B,
    heads: H,
    kvHeads: Hkv,
    tq: Tq,
    tk: Tk,
    headDim: D,
    causal: o.causal ?? false,
    ...(o.scale !== undefined ? { scale: o.scale } : {}),
    ...(pad ? { keyPadding: pad.buffer } : {}),
    qOffset: o.qOffset ?? 0,
  };
  const r = attentionForward(q.rt, q.buffer, k.buffer, v.buffer, opts);
  const out = Tensor.fromBuffer(q.rt, r.out, q.shape);
  const keep = willRecord([q, k, v]);
  const lse = saveOrRelease(q.rt, r.lse, [B, H, Tq], keep);
  if (!keep) return untracked(out, 'attention', [q, k, v]);
  return record(out, 'attention', [q, k, v], {
    batch: B,
    heads: H,
    kvHeads: Hkv,
    tq: Tq,
    tk: Tk,
    headDim: D,
    causal: opts.causal,
    scale: o.scale ?? 1 / Math.sqrt(D),
    qOffset: opts.qOffset ?? 0,
    keyPadding: pad ? pad.detach() : null,
    out,
    lse: lse!,
  });
}

// ------------------------------------------------------------------ backward rules

export const attentionRules: RuleTable<'rope' | 'attention'> = {
  rope(dy, ctx) {
    return [Tensor.fromBuffer(dy.rt, ropeBackward(dy.rt, dy.buffer, ctx), dy.shape)];
  },
  attention(dy, ctx, [q, k, v]) {
    const { out, lse, keyPadding, ...shape } = ctx;
    const opts: AttentionOptions = { ...shape, ...(keyPadding ? { keyPadding: savedBuffer('attention', keyPadding, 'keyPadding') } : {}) };
    const g = attentionBackward(dy.rt, q!.buffer, k!.buffer, v!.buffer, savedBuffer('attention', out, 'output'), savedBuffer('attention', lse, 'lse'), dy.buffer, opts);
    const w = (b: typeof g.dq, t: Tensor) => Tensor.fromBuffer(dy.rt, b, t.shape);
    return [w(g.dq, q!), w(g.dk, k!), w(g.dv, v!)];
  },
};
