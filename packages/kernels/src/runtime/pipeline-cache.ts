/**
 * Compute pipelines by kernel specialization: one per `kernel.cacheKey(params)`, built on first use.
 *
 * Building checks the workgroup size against the device limit up front (a LimitError now, instead of
 * a validation error later), and runs inside a validation scope: a pipeline that fails to build is
 * dropped from the cache and reported, with the WGSL compiler's messages, as the root cause of the
 * errors that follow from it (see error-scopes.ts). Dawn compiles asynchronously, so that report
 * arrives at the runtime's next synchronization point, not here.
 *
 * Non-goals: explicit bind group layouts (layout 'auto' matches the generated binding block), eviction.
 */
import type { ErrorScopes } from './error-scopes.js';
import { LimitError } from './errors.js';
import type { Kernel } from './kernel.js';

export class PipelineCache {
  private readonly pipelines = new Map<string, GPUComputePipeline>();

  constructor(
    private readonly device: GPUDevice,
    private readonly scopes: ErrorScopes,
    /** Called before building (a cache hit needs no device); throws once the device is lost. */
    private readonly assertAlive: () => void,
  ) {}

  get size(): number {
    return this.pipelines.size;
  }

  /** The pipeline for `kernel` specialized by `params`, built if this is its first use. */
  get<P, B extends string, U extends string>(kernel: Kernel<P, B, U>, params: P): GPUComputePipeline {
    const key = kernel.cacheKey(params);
    const cached = this.pipelines.get(key);
    if (cached) return cached;
    this.assertAlive();
    const [x, y = 1, z = 1] = kernel.workgroupSize(params);
    const maxInvocations = this.device.limits.maxComputeInvocationsPerWorkgroup;
    if (x * y * z > maxInvocations) {
      throw new LimitError('maxComputeInvocationsPerWorkgroup', x * y * z, maxInvocations, `kernel '${kernel.name}' workgroup ${x}x${y}x${z}`);
    }
    const code = kernel.source(params);
    const { module, pipeline } = this.scopes.runWith(
      () => {
        const module = this.device.createShaderModule({ code, label: kernel.name });
        const pipeline = this.device.createComputePipeline({
          layout: 'auto',
          compute: { module, entryPoint: 'main' },
          label: kernel.name,
        });
        return { module, pipeline };
      },
      async (err) => {
        this.pipelines.delete(key);
        const info = await module.getCompilationInfo();
        const wgsl = info.messages
          .filter((m) => m.type === 'error')
          .map((m) => `  line ${m.lineNum}:${m.linePos}: ${m.message}`)
          .join('\n');
        this.scopes.rootCause(kernel.name, wgsl ? `WGSL error\n${wgsl}` : err.message);
      },
    );
    this.pipelines.set(key, pipeline);
    return pipeline;
  }
}
