/**
 * Helpers shared by the op families: whether a forward will be recorded (so auxiliary results are
 * kept only when a backward can need them), access to saved tensors with a clear error, dtype checks.
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { isGradEnabled } from '../tape.js';
import { Tensor } from '../tensor.js';

/** True when `record(out, …, inputs, …)` will attach a node (grad enabled, some input requires it). */
export function willRecord(inputs: readonly (Tensor | null | undefined)[]): boolean {
  return isGradEnabled() && inputs.some((t) => t?.requiresGrad);
}

/**
 * Wraps an auxiliary kernel result as a tensor saved for the backward, or releases it right away
 * (returning null) when nothing will be recorded.
 */
export function saveOrRelease(rt: Runtime, buf: GpuBuffer, shape: readonly number[], keep: boolean): Tensor | null {
  if (!keep) {
    rt.release(buf);
    return null;
  }
  return Tensor.fromBuffer(rt, buf, shape);
}

/** The buffer of a tensor the forward saved; throws naming the op if it was disposed meanwhile. */
export function savedBuffer(op: string, t: Tensor, what: string): GpuBuffer {
  if (t.isDisposed) {
    throw new Error(`backward of '${op}': the saved ${what} ${t} was disposed (run backward inside the tidy scope that ran the forward)`);
  }
  return t.buffer;
}

/** Throws unless `t` is a live tensor of `dtype`. */
export function assertDType(op: string, what: string, t: Tensor, dtype: 'f32' | 'i32', shapes: string): void {
  if (t.isDisposed) throw new Error(`${op}: ${what} tensor #${t.id} [${t.shape}] was disposed`);
  if (t.dtype !== dtype) {
    const hint = t.dtype === 'f16' ? "; f16 is a storage type: cast(x, 'f32') first" : '';
    throw new Error(`${op}: ${what} must be ${dtype}, got ${t.dtype} (${shapes})${hint}`);
  }
}

/** `[a,b] and [c]`-style shape list for error messages. */
export function fmtShapes(named: Record<string, Tensor | null | undefined>): string {
  return 'shapes ' + Object.entries(named).filter(([, t]) => t).map(([k, t]) => `${k} [${t!.shape}]`).join(', ');
}
