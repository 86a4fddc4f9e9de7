/**
 * Tensor: a GPU-resident array with a shape, a dtype and, when it takes part in autodiff, a link to
 * the tape node that produced it.
 *
 * Storage is reference-counted so views (reshape, detach) share one GPU buffer without copies; the
 * buffer returns to the runtime's pool when the last tensor using it is disposed. `toArray()` and
 * `item()` are the only operations that wait for the GPU.
 *
 * Non-goals: strided (non-contiguous) views — permute and slice copy; lazy evaluation.
 */
import type { GpuBuffer, Runtime } from '@keel/kernels';
import { takeChecks } from './check-finite.js';
import { track } from './scope.js';
import type { Node } from './tape.js';

/** f16 is a storage type (needs the device's `shader-f16`): ops compute in f32; `cast` converts. */
export type DType = 'f32' | 'i32' | 'f16';

/** Bytes per element. */
export const dtypeBytes = (dtype: DType): number => (dtype === 'f16' ? 2 : 4);

/** IEEE half → number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

export class Storage {
  private refs = 0;
  constructor(
    readonly rt: Runtime,
    readonly buffer: GpuBuffer,
  ) {}
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0) this.rt.release(this.buffer);
  }
  get alive(): boolean {
    return this.refs > 0;
  }
}

let nextId = 1;

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function assertShape(shape: readonly number[], what: string): void {
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new Error(`${what}: invalid shape [${shape}]`);
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  /** Accumulated gradient (leaves with requiresGrad), set by backward(). */
  grad: Tensor | null = null;
  /** The tape node that produced this tensor (null for leaves and untracked results). */
  node: Node | null = null;
  /** Called with each gradient reaching this tensor in backward (e.g. importance accumulation). */
  readonly gradHooks: ((grad: Tensor) => void)[] = [];
  private disposedFlag = false;

  constructor(
    readonly storage: Storage,
    shape: readonly number[],
    readonly dtype: DType = 'f32',
    public requiresGrad = false,
  ) {
    assertShape(shape, 'Tensor');
    this.shape = [...shape];
    storage.retain();
    track(this);
  }

  /** A tensor owning a fresh buffer from the runtime's pool. */
  static fromBuffer(rt: Runtime, buffer: GpuBuffer, shape: readonly number[], dtype: DType = 'f32'): Tensor {
    return new Tensor(new Storage(rt, buffer), shape, dtype);
  }

  get rt(): Runtime {
    return this.storage.rt;
  }
  get buffer(): GpuBuffer {
    if (this.disposedFlag) throw new Error(`tensor #${this.id} [${this.shape}] was disposed`);
    return this.storage.buffer;
  }
  get size(): number {
    return numel(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  get isDisposed(): boolean {
    return this.disposedFlag;
  }

  /** Releases this tensor's hold on its storage (and its gradient). Idempotent. */
  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    this.storage.release();
    this.grad?.dispose();
    this.grad = null;
    this.node = null;
  }

  /**
   * Reads the values back (the only GPU→CPU sync besides item()). With NaN/Inf checking on, first
   * throws for the earliest non-finite value an op was fed since the last read (check-finite.ts).
   */
  async toArray(): Promise<Float32Array | Int32Array> {
    const buffer = this.buffer;
    // the log is taken just before the read is recorded, so it covers exactly the ops issued before it
    const raiseChecks = takeChecks(this.rt);
    const reading = this.rt.read(buffer, 0, this.size * dtypeBytes(this.dtype));
    if (raiseChecks) {
      try {
        await raiseChecks();
      } catch (e) {
        reading.catch(() => {});
        throw e;
      }
    }
    const bytes = await reading;
    if (this.dtype === 'f16') return Float32Array.from(new Uint16Array(bytes), halfToFloat);
    return this.dtype === 'i32' ? new Int32Array(bytes) : new Float32Array(bytes);
  }

  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item(): tensor has ${this.size} elements (shape [${this.shape}]), expected 1`);
    return (await this.toArray())[0]!;
  }

  /** Same storage, no tape history, no gradient. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.dtype, false);
  }

  toString(): string {
    return `Tensor#${this.id}(${this.dtype}[${this.shape}]${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}
