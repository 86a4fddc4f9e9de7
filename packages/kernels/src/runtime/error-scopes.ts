/**
 * Dawn's asynchronous validation errors, turned into errors the runtime can throw.
 *
 * Dawn does not throw when a pipeline, bind group or submit is invalid: it reports the failure
 * through the error scope around the call (a promise that settles later), or through the device's
 * `uncapturederror` event when no scope was open. This collects both, attributes each to the
 * kernel(s) involved, and hands the best one to the runtime at its next synchronization point.
 *
 * Attribution: the first scoped failure wins, except that a pipeline that failed to build replaces
 * the knock-on errors its invalid pipeline caused later (`rootCause`). Uncaptured errors are
 * reported only when no scoped, better attributed error explains them.
 *
 * Non-goals: 'out-of-memory' and 'internal' scopes (device loss covers what we can recover from).
 */
import { KernelError } from './errors.js';

export class ErrorScopes {
  private pending: Promise<void>[] = [];
  private failure: Error | null = null;
  private uncaught: Error | null = null;

  constructor(private readonly device: GPUDevice) {}

  /** Runs `fn` inside a validation scope; a failure becomes a KernelError naming `kernels`. */
  run<T>(kernels: string, fn: () => T): T {
    return this.runWith(fn, (err) => {
      this.failure ??= new KernelError(kernels, err.message);
    });
  }

  /** Runs `fn` inside a validation scope and hands a failure to `onError` (settled by `settle()`). */
  runWith<T>(fn: () => T, onError: (err: GPUError) => void | Promise<void>): T {
    this.device.pushErrorScope('validation');
    const out = fn();
    const scope = this.device.popErrorScope();
    this.pending.push(scope.then((err) => (err ? onError(err) : undefined)));
    return out;
  }

  /** A pipeline that failed to build: it replaces the errors its own invalid pipeline caused. */
  rootCause(kernel: string, message: string): void {
    const prior = this.failure;
    if (!prior || (prior instanceof KernelError && prior.kernel.includes(kernel))) {
      this.failure = new KernelError(kernel, message);
    }
  }

  /** An error that reached `uncapturederror` while `kernels` were being recorded. */
  uncaptured(kernels: string, message: string): void {
    this.uncaught ??= new KernelError(kernels, message);
  }

  /** Waits until every scope opened so far has reported. */
  async settle(): Promise<void> {
    const checks = this.pending;
    this.pending = [];
    await Promise.all(checks);
  }

  /** The error to throw, if any (a scoped one before an uncaptured one); clears both. */
  take(): Error | null {
    const f = this.failure ?? this.uncaught;
    this.failure = null;
    this.uncaught = null;
    return f;
  }
}
