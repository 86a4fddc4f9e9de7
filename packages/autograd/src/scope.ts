/**
 * Scoped cleanup: `tidy(fn)` disposes every tensor created inside `fn` except what it returns (and
 * anything marked with `keep`). Gradients written into leaves (`.grad`) survive: they belong to the
 * leaf, not to the scope.
 */
import type { Tensor } from './tensor.js';

const scopes: Set<Tensor>[] = [];
const kept = new WeakSet<Tensor>();

/** @internal Called by every Tensor constructor. */
export function track(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Exempts `t` from disposal by the enclosing tidy scopes. */
export function keep<T extends Tensor>(t: T): T {
  kept.add(t);
  for (const s of scopes) s.delete(t);
  return t;
}

type Returned = Tensor | readonly Returned[] | { readonly [k: string]: Returned } | void | number | null | undefined;

function collect(value: unknown, out: Set<Tensor>): void {
  if (value === null || typeof value !== 'object') return;
  if ('storage' in value && 'shape' in value && 'dispose' in value) {
    out.add(value as Tensor);
    return;
  }
  for (const v of Array.isArray(value) ? value : Object.values(value)) collect(v, out);
}

/** Runs `fn`; disposes the tensors it created that are not in its result. Synchronous functions only. */
export function tidy<R extends Returned>(fn: () => R): R {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: R;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  if (result instanceof Promise) throw new Error('tidy: fn must be synchronous (it returned a Promise)');
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t) || kept.has(t)) parent?.add(t);
    else if (isGradOfLeaf(t)) continue;
    else t.dispose();
  }
  for (const t of survivors) parent?.add(t);
  return result;
}

const leafGrads = new WeakSet<Tensor>();
/** @internal Marks a tensor as some leaf's `.grad` (owned by the leaf, not by a scope). */
export function markLeafGrad(t: Tensor): void {
  leafGrads.add(t);
  for (const s of scopes) s.delete(t);
}
function isGradOfLeaf(t: Tensor): boolean {
  return leafGrads.has(t);
}
