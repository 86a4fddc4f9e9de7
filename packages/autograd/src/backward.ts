/**
 * Reverse-mode autodiff over the tape. Gradients of intermediate tensors live only during the walk;
 * leaves that require gradients accumulate into `.grad` across backward calls (zero them with
 * `zeroGrad`). Hooks on a tensor see each gradient that reaches it, before accumulation.
 */
import { checkGradient, isCheckFiniteOn } from './check-finite.js';
import { ones } from './creation.js';
import { add } from './ops/elementwise.js';
import { backwardRules } from './ops/rules.js';
import type { BackwardRule, OpName } from './ops/registry.js';
import { markLeafGrad } from './scope.js';
import { noGrad, opLabel } from './tape.js';
import type { Tensor } from './tensor.js';

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    stack.push([t, true]);
    for (const inp of t.node?.inputs ?? []) if (inp.requiresGrad && !seen.has(inp.id)) stack.push([inp, false]);
  }
  return order.reverse(); // root first
}

/** Computes gradients of `root` w.r.t. every leaf that requires them. `seed` = dL/droot (default 1). */
export function backward(root: Tensor, seed?: Tensor): void {
  if (!root.requiresGrad) throw new Error(`backward: ${root} does not require gradients (no input on its tape requires them)`);
  if (root.isDisposed) throw new Error(`backward: ${root} was disposed`);
  if (!seed && root.size !== 1) {
    throw new Error(`backward: output has shape [${root.shape}]; a non-scalar output needs a seed gradient of that shape`);
  }
  if (seed && seed.shape.join() !== root.shape.join()) {
    throw new Error(`backward: seed gradient shape [${seed.shape}] differs from the output shape [${root.shape}]`);
  }
  noGrad(() => {
    const grads = new Map<number, Tensor>();
    grads.set(root.id, seed ? seed.detach() : ones(root.rt, root.shape));
    for (const t of topoOrder(root)) {
      const g = grads.get(t.id);
      if (!g) continue;
      grads.delete(t.id);
      for (const hook of t.gradHooks) hook(g);
      const node = t.node;
      if (!node) {
        // a leaf: accumulate into .grad
        if (t.grad) {
          const sum = add(t.grad, g);
          t.grad.dispose();
          g.dispose();
          t.grad = sum;
        } else t.grad = g;
        markLeafGrad(t.grad);
        continue;
      }
      node.inputs.forEach((inp, i) => {
        if (inp.isDisposed && inp.requiresGrad) {
          throw new Error(`backward through a disposed tensor: input ${i} of '${node.op}' (${inp}) was disposed`);
        }
      });
      if (isCheckFiniteOn()) checkGradient(opLabel(node.op, node.ctx), g);
      const rule = backwardRules[node.op] as BackwardRule<OpName>;
      const inGrads = rule(g, node.ctx, node.inputs);
      g.dispose();
      node.inputs.forEach((inp, i) => {
        const gi = inGrads[i];
        if (!gi) return;
        if (!inp.requiresGrad) {
          gi.dispose();
          return;
        }
        const prev = grads.get(inp.id);
        if (prev) {
          grads.set(inp.id, add(prev, gi));
          prev.dispose();
          gi.dispose();
        } else grads.set(inp.id, gi);
      });
    }
  });
}

/** Clears the accumulated gradients of `tensors`. */
export function zeroGrad(tensors: Iterable<Tensor>): void {
  for (const t of tensors) {
    t.grad?.dispose();
    t.grad = null;
  }
}
