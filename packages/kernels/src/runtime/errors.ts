/**
 * Errors the runtime throws. Dawn reports validation failures only through error scopes and the
 * `uncapturederror` event (it prints and carries on otherwise), so every such failure is turned into
 * one of these and thrown at the next synchronization point.
 */

/** A kernel's pipeline could not be built, or a submission that used it failed validation. */
export class KernelError extends Error {
  override readonly name = 'KernelError';
  constructor(
    readonly kernel: string,
    readonly gpuMessage: string,
  ) {
    super(`kernel '${kernel}': ${gpuMessage}`);
  }
}

/** The GPU device was lost (destroyed, driver reset, out of memory); no further work can run. */
export class DeviceLostError extends Error {
  override readonly name = 'DeviceLostError';
  constructor(
    readonly reason: string,
    readonly gpuMessage: string,
  ) {
    super(`GPU device lost (${reason})${gpuMessage ? `: ${gpuMessage}` : ''}`);
  }
}

/** A request exceeds a limit of the device (binding size, buffer size, workgroups). */
export class LimitError extends Error {
  override readonly name = 'LimitError';
  constructor(
    readonly limit: string,
    readonly requested: number,
    readonly allowed: number,
    what: string,
  ) {
    super(`${what}: ${requested} exceeds the device limit ${limit} = ${allowed}`);
  }
}

/** No WebGPU adapter could be found (no driver, or WebGPU unavailable in this environment). */
export class NoAdapterError extends Error {
  override readonly name = 'NoAdapterError';
}
