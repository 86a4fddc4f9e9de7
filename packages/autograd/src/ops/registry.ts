/**
 * Every differentiable op and what its forward saves for the backward. The backward-rule table
 * (ops/rules.ts) is typed `{ [K in OpName]: BackwardRule<K> }`, so adding an op here without a rule
 * is a compile error.
 */
import type { DiffBinaryOp, UnaryOp } from '@keel/kernels';
import type { Tensor } from '../tensor.js';

export interface OpCtx {
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
}

export type OpName = keyof OpCtx;

/** Gradients for each input (null where an input needs none), given dy and the node's context. */
export type BackwardRule<K extends OpName> = (dy: Tensor, ctx: OpCtx[K], inputs: readonly Tensor[]) => readonly (Tensor | null)[];
