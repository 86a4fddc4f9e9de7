/**
 * The tape: each differentiable op records a Node (op name, inputs, what it saved) on its output
 * when gradients are enabled and some input requires them. `backward()` (backward.ts) walks the
 * nodes in reverse topological order and applies the rule for each op from one typed table.
 */
import { checkInputs, isCheckFiniteOn } from './check-finite.js';
import type { OpCtx, OpName } from './ops/registry.js';
import type { Tensor } from './tensor.js';

export interface Node<K extends OpName = OpName> {
  readonly op: K;
  readonly inputs: readonly Tensor[];
  /** What the forward saved for the backward (shapes, options, saved tensors). */
  readonly ctx: OpCtx[K];
}

let gradEnabled = true;

/** Runs `fn` without recording anything on the tape. */
export function noGrad<R>(fn: () => R): R {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** The op's name in errors: the elementwise, reduce and softmax families by their member. */
export function opLabel<K extends OpName>(op: K, ctx: OpCtx[K]): string {
  const c = ctx as { op?: string; kind?: string };
  return (op === 'unary' || op === 'binary' || op === 'reduce' ? c.op : op === 'softmax' ? c.kind : undefined) ?? op;
}

/**
 * Attaches a node to `out` if recording is on and any input requires gradients. Returns `out`.
 * Every op result passes through here or through `untracked`, which is where NaN/Inf checking
 * (check-finite.ts) looks at the op's inputs; reshape, a view, is left to its consumer.
 */
export function record<K extends OpName>(out: Tensor, op: K, inputs: readonly Tensor[], ctx: OpCtx[K]): Tensor {
  if (isCheckFiniteOn() && op !== 'reshape') checkInputs(opLabel(op, ctx), inputs);
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, ctx } as Node<OpName>;
  }
  return out;
}

/** The result of an op that records nothing (comparisons, max/argmax, a forward no backward needs). */
export function untracked(out: Tensor, op: string, inputs: readonly (Tensor | null)[]): Tensor {
  if (isCheckFiniteOn()) checkInputs(op, inputs);
  return out;
}
