/**
 * The instance every selective method shares: a chosen set of base parameters trained in place.
 * A device copy of their pre-trained values W0 is taken at apply time, because "disabled equals
 * base" needs W0 back and later selective methods (SPIDER, MagnitudeMask, L2-SP) need it anyway:
 *   disable: W_tuned → stash, W0 → W        enable: stash → W (the stash is freed)
 * merge() keeps the tuned values (they already are base weights) and drops W0: the tuning is then
 * permanent and the instance inert.
 *
 * Saved state: the selected tensors' current values under their base names.
 * Non-goals: training while disabled (the optimizer would write into W0's place), sparse deltas.
 */
import { Tensor, keep, type Parameter } from '@keel/autograd';
import type { StrategyInstance, TensorState } from './strategy.js';

/** A live device copy of `p` (survives tidy scopes; dispose it yourself). */
export function snapshot(p: Tensor): Tensor {
  const copy = keep(Tensor.fromBuffer(p.rt, p.rt.createBuffer(p.size * 4), p.shape));
  if (p.size > 0) p.rt.copy(p.buffer, copy.buffer, p.size * 4);
  return copy;
}

function copyInto(src: Tensor, dst: Tensor): void {
  if (dst.size > 0) dst.rt.copy(src.buffer, dst.buffer, dst.size * 4);
}

/** Checks a saved state against the expected names and shapes, naming every problem. */
export function checkState(method: string, expected: ReadonlyMap<string, { shape: readonly number[] }>, given: ReadonlyMap<string, TensorState>): void {
  const problems: string[] = [];
  for (const [name, want] of expected) {
    const got = given.get(name);
    if (!got) problems.push(`missing '${name}'`);
    else if (got.shape.join() !== want.shape.join()) problems.push(`'${name}' has shape [${got.shape}], expected [${want.shape}]`);
    else if (got.data.length !== want.shape.reduce((a, b) => a * b, 1)) problems.push(`'${name}' has ${got.data.length} values for shape [${got.shape}]`);
  }
  for (const name of given.keys()) if (!expected.has(name)) problems.push(`unexpected '${name}'`);
  if (problems.length) throw new Error(`${method}: saved state does not fit this model: ${problems.join('; ')}`);
}

/**
 * What methods built on a selective instance read of it (L2-SP's and EWC's penalty, the post-hoc
 * transforms): the W0 snapshots and where the tuned values live right now.
 */
export interface SelectiveTensors {
  /** W0 by base name; empty once the instance was merged or removed. */
  readonly w0: ReadonlyMap<string, Tensor>;
  /** The tensor holding `name`'s tuned values: the parameter itself, or its stash while disabled. */
  tuned(name: string): Tensor;
}

const selectiveViews = new WeakMap<StrategyInstance, SelectiveTensors>();

/** The W0 snapshots and tuned-value locations of an instance made by `selectiveInstance`. */
export function selectiveTensors(instance: StrategyInstance): SelectiveTensors {
  const view = selectiveViews.get(instance);
  if (!view) throw new Error('selectiveTensors: the instance was not made by selectiveInstance');
  return view;
}

/** A selective instance over `params` (base name → parameter). */
export function selectiveInstance(method: string, params: ReadonlyMap<string, Parameter>): StrategyInstance {
  const w0 = new Map([...params].map(([name, p]) => [name, snapshot(p)]));
  let stash: Map<string, Tensor> | null = null; // tuned values while disabled
  let merged = false;
  const live = (what: string) => {
    if (merged) throw new Error(`${method}.${what}: the method was merged into the base weights; nothing is left to switch`);
  };
  const release = () => {
    for (const t of w0.values()) t.dispose();
    w0.clear();
    for (const t of stash?.values() ?? []) t.dispose();
    stash = null;
  };
  const instance: StrategyInstance = {
    trainable: params,
    modules: [...new Set([...params.keys()].map((n) => n.slice(0, Math.max(0, n.lastIndexOf('.')))))],
    merge() {
      live('merge');
      if (stash) throw new Error(`${method}.merge: the method is disabled; enable() it first so the tuned values are the ones kept`);
      release();
      merged = true;
    },
    setEnabled(on) {
      live(on ? 'enable' : 'disable');
      if (!on && !stash) {
        stash = new Map([...params].map(([name, p]) => [name, snapshot(p)]));
        for (const [name, p] of params) copyInto(w0.get(name)!, p);
      } else if (on && stash) {
        for (const [name, p] of params) copyInto(stash.get(name)!, p);
        for (const t of stash.values()) t.dispose();
        stash = null;
      }
    },
    async state() {
      const out = new Map<string, TensorState>();
      // while disabled the tuned values sit in the stash
      for (const [name, p] of params) out.set(name, { shape: [...p.shape], data: (await (stash?.get(name) ?? p).toArray()) as Float32Array });
      return out;
    },
    loadState(state) {
      live('loadState');
      checkState(method, params, state);
      for (const [name, p] of params) {
        const target = stash?.get(name) ?? p;
        if (p.size > 0) p.rt.write(target.buffer, state.get(name)!.data);
      }
    },
    extraStateBytes: () => [...w0.values(), ...(stash?.values() ?? [])].reduce((s, t) => s + t.size * 4, 0),
    remove() {
      if (stash) for (const [name, p] of params) copyInto(stash.get(name)!, p);
      release();
      merged = true;
    },
  };
  selectiveViews.set(instance, { w0, tuned: (name) => stash?.get(name) ?? params.get(name)! });
  return instance;
}
