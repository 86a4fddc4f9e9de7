/**
 * Every differentiable op and what its forward saves for the backward. The backward-rule table
 * (ops/rules.ts) is typed `{ [K in OpName]: BackwardRule<K> }`, so adding an op here without a rule
 * is a compile error.
 *
 * Saved tensors (`Tensor` fields below) are either the op's own output (its lifetime is the node's:
 * a disposed output drops its node) or auxiliary results of the forward kernel (lse, mean, rstd…),
 * which the enclosing `tidy` scope disposes with the other intermediates — run `backward` inside the
 * scope that ran the forward. Non-differentiable tensor operands (targets, ids, indices, where's
 * condition) are passed as node inputs, and their rules return null for them.
 */
import type { DiffBinaryOp, RopeLayout, SoftmaxKind, UnaryOp } from '@keel/kernels';
import type { Tensor } from '../tensor.js';

export interface OpCtx {
  /** Storage conversion f32 ↔ f16; saves the input dtype. */
  cast: { from: 'f32' | 'f16' };
  /** y = f(x) elementwise (incl. scalar variants); saves x via inputs. */
  unary: { op: UnaryOp; scalar?: number };
  /** y = a ∘ b with broadcasting; saves a and b via inputs. */
  binary: { op: DiffBinaryOp };
  /** C = op(A)·op(B), batched; saves A and B via inputs. */
  matmul: { transA: boolean; transB: boolean };
  /** sum or mean over axes; saves the input shape and the kept-dims output shape. */
  reduce: { op: 'sum' | 'mean'; inShape: readonly number[]; keptShape: readonly number[]; count: number };
  /** A view with another shape (no copy). */
  reshape: { inShape: readonly number[] };
  /** Broadcast to a larger shape (a copy with zero strides). */
  expand: { inShape: readonly number[] };

  // ---- nn.ts (inputs in brackets)
  /** softmax / log-softmax over the last axis [x]; saves its output y (the backward needs y, dy). */
  softmax: { kind: SoftmaxKind; causal: boolean; y: Tensor };
  /** mean cross-entropy [logits (N, V), targets i32 (N,)]; saves lse (N,) and count (1,). */
  crossEntropy: { shape: readonly [number, number]; ignoreIndex: number; lse: Tensor; count: Tensor };
  /** LayerNorm over the last axis [x, weight?, bias?]; saves row mean and rstd (N,). */
  layerNorm: { shape: readonly [number, number]; hasWeight: boolean; hasBias: boolean; mean: Tensor; rstd: Tensor };
  /** RMSNorm over the last axis [x, weight?]; saves rstd (N,). */
  rmsNorm: { shape: readonly [number, number]; hasWeight: boolean; rstd: Tensor };
  /** Row lookup [table (V, C), ids i32]; saves nothing beyond the ids. */
  embedding: { shape: readonly [number, number] };
  /** y = x·Wᵀ + b [x (R, in), W (out, in), bias? (out,)]; saves x and W via inputs. */
  linear: { rows: number; inFeatures: number; outFeatures: number; hasBias: boolean };

  // ---- attention.ts
  /** Rotary embedding [x (B, T, H, D) or (B, H, T, D)]; saves nothing (the backward is the inverse rotation). */
  rope: { shape: readonly [number, number, number, number]; layout: RopeLayout; offset: number; theta: number };
  /** Flash attention [q, k, v]; saves out and lse (B, H, Tq), and the key-padding mask if any. */
  attention: {
    batch: number;
    heads: number;
    kvHeads: number;
    tq: number;
    tk: number;
    headDim: number;
    causal: boolean;
    scale: number;
    qOffset: number;
    keyPadding: Tensor | null;
    out: Tensor;
    lse: Tensor;
  };

  // ---- layout.ts
  /** out = x.permute(perm) [x]. */
  permute: { perm: readonly number[] };
  /** out = x[starts:ends] [x]. */
  slice: { inShape: readonly number[]; starts: readonly number[]; ends: readonly number[] };
  /** Concatenation along `axis` [x₀, x₁, …]. */
  concat: { axis: number; sizes: readonly number[]; outShape: readonly number[] };
  /** Gather along `axis` [x, indices i32 (J,)]. */
  indexSelect: { axis: number; inShape: readonly number[]; count: number };
  /** cond ≠ 0 ? a : b with broadcasting [cond, a, b]; cond gets no gradient. */
  where: { outShape: readonly number[] };
}

export type OpName = keyof OpCtx;

/** Gradients for each input (null where an input needs none), given dy and the node's context. */
export type BackwardRule<K extends OpName> = (dy: Tensor, ctx: OpCtx[K], inputs: readonly Tensor[]) => readonly (Tensor | null)[];

/** The rules of a subset of ops (one op family), assembled into the full table in rules.ts. */
export type RuleTable<K extends OpName> = { readonly [P in K]: BackwardRule<P> };
