/**
 * keel's GPU runtime: one device, a pipeline cache, pooled buffers, batched submission, readback.
 *
 * - Work is recorded into one command encoder and submitted in batches: on readback, on `flush()`,
 *   or every `maxBatch` dispatches. Nothing waits on the GPU except `read()` and `sync()`.
 * - Dawn does not throw on validation errors; it reports them through error scopes. Pipeline
 *   creation (pipeline-cache.ts), bind groups and every submit run inside a validation scope, and any
 *   failure (plus anything that reaches `uncapturederror`) is thrown from the next `read()`/`sync()`
 *   as a `KernelError` naming the kernel(s) and carrying the WGSL compiler's message (error-scopes.ts).
 * - Device loss rejects pending readbacks with `DeviceLostError` and makes further calls throw; the
 *   first cause is kept (a `destroy()` is reported as such, not as the loss it triggers).
 *
 * Non-goals: multiple queues, render work, automatic garbage collection of buffers (callers release).
 */
import { BufferPool, type GpuBuffer, type PoolStats } from './buffer-pool.js';
import { describeDevice, requestDevice, type DeviceInfo, type DeviceRequest, type KeelFeature } from './device.js';
import { ErrorScopes } from './error-scopes.js';
import { DeviceLostError, LimitError } from './errors.js';
import { packUniforms, storageEntries, type DispatchArgs, type Kernel } from './kernel.js';
import { checkTextureCopy, type OperandTextureFormat } from './operand-texture.js';
import { PipelineCache } from './pipeline-cache.js';
import { KernelProfiler, type KernelTime } from './profiler.js';

export interface RuntimeOptions extends DeviceRequest {
  /** Submit after this many recorded dispatches even without a readback. Default 256. */
  maxBatch?: number;
}

export interface RuntimeStats extends PoolStats {
  pipelines: number;
  dispatches: number;
  submits: number;
}

type TypedArray = Float32Array | Uint32Array | Int32Array | Uint16Array | Uint8Array;

const STORAGE_USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */
const UNIFORM_USAGE = 0x40 /* UNIFORM */ | 0x8; /* COPY_DST */
const READBACK_USAGE = 0x1 /* MAP_READ */ | 0x8; /* COPY_DST */

export class Runtime {
  readonly info: DeviceInfo;
  readonly features: ReadonlySet<string>;
  readonly limits: GPUSupportedLimits;

  private readonly storage: BufferPool;
  private readonly uniformPool: BufferPool;
  private readonly readbackPool: BufferPool;
  private readonly scopes: ErrorScopes;
  private readonly pipelines: PipelineCache;
  private encoder: GPUCommandEncoder | null = null;
  private batchKernels: string[] = [];
  private transient: { destroy(): void }[] = [];
  private lostError: DeviceLostError | null = null;
  private readonly lostSignal: Promise<never>;
  private readonly maxBatch: number;
  private dispatchCount = 0;
  private submitCount = 0;
  private profiler: KernelProfiler | null = null;

  private constructor(
    readonly device: GPUDevice,
    adapterInfo: GPUAdapterInfo,
    options: RuntimeOptions,
    /** WGSL language extensions the implementation supports (navigator.gpu.wgslLanguageFeatures). */
    readonly wgslFeatures: ReadonlySet<string> = new Set(),
  ) {
    this.maxBatch = options.maxBatch ?? 256;
    this.limits = device.limits;
    this.info = describeDevice(device, adapterInfo);
    this.features = new Set(this.info.features);
    const maxBuffer = device.limits.maxBufferSize;
    this.storage = new BufferPool(device, STORAGE_USAGE, maxBuffer, 'keel storage');
    this.uniformPool = new BufferPool(device, UNIFORM_USAGE, maxBuffer, 'keel uniforms');
    this.readbackPool = new BufferPool(device, READBACK_USAGE, maxBuffer, 'keel readback');
    this.scopes = new ErrorScopes(device);
    this.pipelines = new PipelineCache(device, this.scopes, () => this.assertAlive());

    this.lostSignal = device.lost.then((lost) => {
      // Keep the first cause: after destroy() this loss is its consequence, and destroy()'s error says why.
      this.lostError ??= new DeviceLostError(lost.reason ?? 'unknown', lost.message ?? '');
      throw this.lostError;
    });
    this.lostSignal.catch(() => {}); // observed through read()/sync(), never unhandled
    device.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.scopes.uncaptured(unique(this.batchKernels).join(', ') || '(unknown)', err.message);
    });
  }

  /** Requests an adapter and a device with the adapter's real limits and keel's features. */
  static async create(options: RuntimeOptions = {}): Promise<Runtime> {
    const { device, adapterInfo, wgslFeatures } = await requestDevice(options);
    return new Runtime(device, adapterInfo, options, new Set(wgslFeatures));
  }

  has(feature: KeelFeature): boolean {
    return this.features.has(feature);
  }

  // ---------------------------------------------------------------- buffers

  /** A storage buffer of `bytes` (contents undefined if it was reused). */
  createBuffer(bytes: number): GpuBuffer {
    this.assertAlive();
    return this.storage.acquire(bytes);
  }

  /** A storage buffer holding `data`. */
  upload(data: TypedArray): GpuBuffer {
    const buf = this.createBuffer(data.byteLength);
    this.write(buf, data);
    return buf;
  }

  /** Writes `data` at `byteOffset`, ordered after all work recorded so far. */
  write(buf: GpuBuffer, data: TypedArray, byteOffset = 0): void {
    this.assertAlive();
    if (buf.isReleased) throw new Error('write: buffer was released');
    if (byteOffset + data.byteLength > buf.size) {
      throw new RangeError(`write: ${data.byteLength} bytes at offset ${byteOffset} overflow a ${buf.size}-byte buffer`);
    }
    if (data.byteLength === 0) return;
    // WebGPU copies move multiples of 4 bytes; pad the tail.
    const padded = Math.ceil(data.byteLength / 4) * 4;
    const bytes =
      padded === data.byteLength
        ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
        : (() => {
            const p = new Uint8Array(padded);
            p.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
            return p;
          })();
    if (!this.encoder) {
      // Nothing recorded is pending, so the queue write is correctly ordered.
      this.device.queue.writeBuffer(buf.buffer, byteOffset, bytes as Uint8Array<ArrayBuffer>);
      return;
    }
    // Recorded work may still read `buf`: stage the data and copy inside the encoder, in order.
    const staging = this.device.createBuffer({ size: padded, usage: 0x4 /* COPY_SRC */, mappedAtCreation: true });
    new Uint8Array(staging.getMappedRange()).set(bytes);
    staging.unmap();
    this.encoder.copyBufferToBuffer(staging, 0, buf.buffer, byteOffset, padded);
    this.transient.push(staging);
  }

  /** Records a buffer-to-buffer copy. */
  copy(src: GpuBuffer, dst: GpuBuffer, bytes = src.size, srcOffset = 0, dstOffset = 0): void {
    this.assertAlive();
    if (bytes === 0) return;
    if (srcOffset + bytes > src.capacity || dstOffset + bytes > dst.capacity) {
      throw new RangeError(`copy: ${bytes} bytes overflow (src ${src.size}, dst ${dst.size})`);
    }
    this.openEncoder().copyBufferToBuffer(src.buffer, srcOffset, dst.buffer, dstOffset, Math.ceil(bytes / 4) * 4);
  }

  /**
   * Records a copy of `buf` into a new 2D-array texture of `width` × `height` texels and `layers`
   * layers, rgba32float (texel (x, y, l) = the 4 floats at byteOffset + ((l·height + y)·width + x)·16)
   * or rgba16float (4 halves, 8 bytes a texel), and returns its view, for kernels that read an
   * operand with textureLoad. The texture is fresh and lives until the work submitted with it has
   * finished (reusing textures from a pool measured ~20 % slower training steps on lavapipe).
   * Needs a row (width texels) to be a multiple of 256 bytes (WebGPU's bytesPerRow alignment) and
   * byteOffset a multiple of the texel size; sizes above the device's texture limits throw a
   * LimitError naming the limit.
   */
  textureFromBuffer(buf: GpuBuffer, byteOffset: number, width: number, height: number, layers: number, format: OperandTextureFormat = 'rgba32float'): GPUTextureView {
    this.assertAlive();
    const texel = checkTextureCopy(buf, byteOffset, { width, height, layers }, format, this.limits);
    const texture = this.device.createTexture({
      label: 'keel operand texture',
      size: [width, height, layers],
      format,
      usage: 0x4 /* TEXTURE_BINDING */ | 0x8 /* STORAGE_BINDING */ | 0x2 /* COPY_DST */,
    });
    this.openEncoder().copyBufferToTexture({ buffer: buf.buffer, offset: byteOffset, bytesPerRow: width * texel, rowsPerImage: height }, { texture }, [width, height, layers]);
    this.transient.push(texture);
    return texture.createView({ dimension: '2d-array' });
  }

  /** Returns a buffer to the pool. Safe while recorded work still uses it. */
  release(buf: GpuBuffer): void {
    this.storage.release(buf, this.encoder !== null);
  }

  // ---------------------------------------------------------------- kernels

  /** Builds (or fetches from the cache) the pipeline for a kernel specialization. */
  pipeline<P, B extends string, U extends string>(kernel: Kernel<P, B, U>, params: P): GPUComputePipeline {
    return this.pipelines.get(kernel, params);
  }

  /** Builds a kernel's pipeline now and throws if it is invalid (instead of at the next sync). */
  async compile<P, B extends string, U extends string>(kernel: Kernel<P, B, U>, params: P): Promise<void> {
    this.pipeline(kernel, params);
    await this.checkErrors();
  }

  /** Records one dispatch of `kernel`. Runs on the GPU at the next submit. */
  dispatch<P, B extends string, U extends string>(kernel: Kernel<P, B, U>, params: P, args: DispatchArgs<B, U>): void {
    this.assertAlive();
    const pipeline = this.pipeline(kernel, params);
    const uniforms = (args.uniforms ?? {}) as Readonly<Record<U, number>>;
    const groups = kernel.dispatch(params, uniforms);
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
    for (const g of groups) {
      if (g > maxDim) {
        throw new LimitError('maxComputeWorkgroupsPerDimension', g, maxDim, `kernel '${kernel.name}' dispatch`);
      }
    }
    if (groups[0] * groups[1] * groups[2] === 0) return;

    const entries = storageEntries(kernel, args.buffers, this.limits.maxStorageBufferBindingSize);
    let uniformBuf: GpuBuffer | null = null;
    if (kernel.uniforms.length > 0) {
      const data = packUniforms(kernel.name, kernel.uniforms, uniforms);
      uniformBuf = this.uniformPool.acquire(data.byteLength);
      // A fresh or post-submit buffer: no recorded work reads it, so a queue write is ordered.
      this.device.queue.writeBuffer(uniformBuf.buffer, 0, data);
      entries.push({ binding: kernel.bindings.length, resource: { buffer: uniformBuf.buffer } });
    }
    const bindGroup = this.scopes.run(kernel.name, () =>
      this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label: kernel.name }),
    );
    if (this.profiler?.full) this.flush();
    const timestampWrites = this.profiler?.passWrites(kernel.name);
    const pass = this.openEncoder().beginComputePass({ label: kernel.name, ...(timestampWrites ? { timestampWrites } : {}) });
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    pass.end();
    if (uniformBuf) this.uniformPool.release(uniformBuf, true);
    this.batchKernels.push(kernel.name);
    this.dispatchCount++;
    if (this.batchKernels.length >= this.maxBatch) this.flush();
  }

  // ---------------------------------------------------------------- submission and readback

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder || this.lostError) return;
    const encoder = this.encoder;
    const kernels = this.batchKernels;
    const transient = this.transient;
    this.encoder = null;
    this.batchKernels = [];
    this.transient = [];
    const collectTimes = this.profiler?.resolve(encoder) ?? null;
    this.scopes.run(unique(kernels).join(', ') || '(copy)', () => {
      this.device.queue.submit([encoder.finish()]);
      collectTimes?.();
    });
    this.submitCount++;
    this.storage.onSubmit();
    this.uniformPool.onSubmit();
    if (transient.length) {
      void this.device.queue.onSubmittedWorkDone().then(
        () => transient.forEach((b) => b.destroy()),
        () => {},
      );
    }
  }

  /** Copies `bytes` of `buf` from `byteOffset` back to the CPU. The only way data leaves the GPU. */
  async read(buf: GpuBuffer, byteOffset = 0, bytes = buf.size - byteOffset): Promise<ArrayBuffer> {
    this.assertAlive();
    if (buf.isReleased) throw new Error('read: buffer was released');
    if (byteOffset % 4 !== 0 || byteOffset + bytes > buf.capacity) {
      throw new RangeError(`read: ${bytes} bytes at offset ${byteOffset} out of range of a ${buf.size}-byte buffer`);
    }
    if (bytes === 0) {
      await this.sync();
      return new ArrayBuffer(0);
    }
    const padded = Math.ceil(bytes / 4) * 4;
    const staging = this.readbackPool.acquire(padded);
    this.openEncoder().copyBufferToBuffer(buf.buffer, byteOffset, staging.buffer, 0, padded);
    this.flush();
    try {
      await Promise.race([staging.buffer.mapAsync(0x1 /* READ */, 0, padded), this.lostSignal]);
      await this.checkErrors();
      const out = staging.buffer.getMappedRange(0, padded).slice(0, bytes);
      staging.buffer.unmap();
      return out;
    } finally {
      if (staging.buffer.mapState === 'mapped') staging.buffer.unmap();
      this.readbackPool.release(staging, false);
    }
  }

  async readF32(buf: GpuBuffer, offset = 0, count = (buf.size - offset * 4) / 4): Promise<Float32Array> {
    return new Float32Array(await this.read(buf, offset * 4, count * 4));
  }

  async readU32(buf: GpuBuffer, offset = 0, count = (buf.size - offset * 4) / 4): Promise<Uint32Array> {
    return new Uint32Array(await this.read(buf, offset * 4, count * 4));
  }

  /** Submits recorded work, waits for the GPU to finish it, and throws any error it produced. */
  async sync(): Promise<void> {
    this.assertAlive();
    this.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), this.lostSignal]);
    await this.checkErrors();
  }

  /** Throws the first error reported since the last check (and clears it). */
  async checkErrors(): Promise<void> {
    await this.scopes.settle();
    if (this.lostError) throw this.lostError;
    const f = this.scopes.take();
    if (f) throw f;
  }

  /**
   * Starts timing every dispatch on the GPU (needs 'timestamp-query'); `stopProfile()` returns the
   * time per kernel. Profiling adds a resolve and a readback per submit: do not time it.
   */
  startProfile(): void {
    if (!this.has('timestamp-query')) throw new Error(`startProfile: the device has no 'timestamp-query' feature (features: ${[...this.features].join(', ')})`);
    if (this.profiler) throw new Error('startProfile: a profile is already running');
    this.flush();
    this.profiler = new KernelProfiler(this.device);
  }

  /** Ends the profile started by `startProfile()`: GPU time per kernel, slowest first. */
  async stopProfile(): Promise<KernelTime[]> {
    const p = this.profiler;
    if (!p) throw new Error('stopProfile: no profile is running (call startProfile() first)');
    this.flush();
    this.profiler = null;
    try {
      return await p.report();
    } finally {
      p.destroy();
    }
  }

  stats(): RuntimeStats {
    return {
      ...this.storage.stats(),
      pipelines: this.pipelines.size,
      dispatches: this.dispatchCount,
      submits: this.submitCount,
    };
  }

  /** Starts a new measurement of peak live storage bytes (stats().peakLiveBytes). */
  resetPeak(): void {
    this.storage.resetPeak();
  }

  /** Frees pooled (not live) buffers. */
  trim(): void {
    this.storage.trim();
    this.uniformPool.trim();
    this.readbackPool.trim();
  }

  get lost(): boolean {
    return this.lostError !== null;
  }

  /** Destroys the device: pending readbacks reject and every later call throws `DeviceLostError`. */
  destroy(): void {
    this.encoder = null;
    this.lostError ??= new DeviceLostError('destroyed', 'Runtime.destroy() was called');
    this.device.destroy();
  }

  private openEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder({ label: 'keel batch' });
    return this.encoder;
  }

  private assertAlive(): void {
    if (this.lostError) throw this.lostError;
  }
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

let shared: Promise<Runtime> | undefined;

/** The process-wide runtime (created on first use). */
export async function getRuntime(options?: RuntimeOptions): Promise<Runtime> {
  if (shared) {
    const rt = await shared.catch(() => null);
    if (rt && !rt.lost) return rt;
  }
  shared = Runtime.create(options);
  return shared;
}

export { WANTED_FEATURES } from './device.js';
export type { DeviceInfo, KeelFeature } from './device.js';
export type { BufferBinding, DispatchArgs } from './kernel.js';
