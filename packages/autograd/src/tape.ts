/**
 * The tape: each differentiable op records a Node (op name, inputs, what it saved) on its output
 * when gradients are enabled and some input requires them. `backward()` (backward.ts) walks the
 * nodes in reverse topological order and applies the rule for each op from one typed table.
 */
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

/** Attaches a node to `out` if recording is on and any input requires gradients. Returns `out`. */
export function record<K extends OpName>(out: Tensor, op: K, inputs: readonly Tensor[], ctx: OpCtx[K]): Tensor {
  if (gradEnabled && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { op, inputs, ctx } as Node<OpName>;
  }
  return out;
}
