/**
 * Creating tensors: constants (GPU fill), from arrays, ranges, and seeded random values. Random
 * values are generated on the CPU with a counter-based seed so the same seed gives the same values
 * on every device.
 */
import { fill, type Runtime } from '@keel/kernels';
import { Tensor, assertShape, numel, type DType } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

function allocate(rt: Runtime, shape: readonly number[], opts: CreateOptions): Tensor {
  assertShape(shape, 'create');
  const dtype = opts.dtype ?? 'f32';
  if (dtype === 'f16') {
    throw new Error(`create: f16 tensors are made by cast(x, 'f16') from f32 (shape [${shape}])`);
  }
  const t = Tensor.fromBuffer(rt, rt.createBuffer(numel(shape) * 4), shape, dtype);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

export function full(rt: Runtime, shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor {
  const t = allocate(rt, shape, opts);
  if ((opts.dtype ?? 'f32') === 'i32') {
    if (!Number.isInteger(value)) throw new Error(`full: i32 tensor cannot hold ${value}`);
    if (t.size > 0) rt.write(t.buffer, new Int32Array(t.size).fill(value));
  } else if (t.size > 0) fill(rt, t.buffer, value, t.size);
  return t;
}

export const zeros = (rt: Runtime, shape: readonly number[], opts: CreateOptions = {}): Tensor => full(rt, shape, 0, opts);
export const ones = (rt: Runtime, shape: readonly number[], opts: CreateOptions = {}): Tensor => full(rt, shape, 1, opts);

/** A tensor holding `data` (row-major) with `shape` (default: 1-D). */
export function tensor(rt: Runtime, data: ArrayLike<number>, shape: readonly number[] = [data.length], opts: CreateOptions = {}): Tensor {
  if (numel(shape) !== data.length) {
    throw new Error(`tensor: ${data.length} values do not fill shape [${shape}] (${numel(shape)} elements)`);
  }
  const dtype = opts.dtype ?? (data instanceof Int32Array ? 'i32' : 'f32');
  const t = allocate(rt, shape, { ...opts, dtype });
  if (t.size > 0) rt.write(t.buffer, dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data));
  return t;
}

/** [start, start + step, …) below `end`, as f32. */
export function arange(rt: Runtime, start: number, end: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (step === 0 || !Number.isFinite(step)) throw new Error(`arange: step must be finite and non-zero, got ${step}`);
  const n = Math.max(0, Math.ceil((end - start) / step));
  return tensor(rt, Array.from({ length: n }, (_, i) => start + i * step), [n], opts);
}

/**
 * mulberry32 as an object whose whole state is one u32 (`state`), so a resumable loop can save where
 * its random stream stands and continue it exactly (`new SeededStream(0).restore(saved)`).
 */
export class SeededStream {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  get state(): number {
    return this.a;
  }
  restore(state: number): this {
    if (!Number.isInteger(state) || state < 0 || state > 0xffffffff) throw new Error(`SeededStream.restore: state must be a u32, got ${state}`);
    this.a = state;
    return this;
  }
}

/** mulberry32 (seeded, deterministic): the same stream as `new SeededStream(seed).next`. */
export function seededRandom(seed: number): () => number {
  const stream = new SeededStream(seed);
  return () => stream.next();
}

/** Normal(mean, std) values; same seed → same values. */
export function randn(rt: Runtime, shape: readonly number[], seed: number, { mean = 0, std = 1, ...opts }: CreateOptions & { mean?: number; std?: number } = {}): Tensor {
  const r = seededRandom(seed);
  const n = numel(shape);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  }
  return tensor(rt, out, shape, opts);
}

/** Uniform [low, high) values; same seed → same values. */
export function rand(rt: Runtime, shape: readonly number[], seed: number, { low = 0, high = 1, ...opts }: CreateOptions & { low?: number; high?: number } = {}): Tensor {
  const r = seededRandom(seed);
  return tensor(rt, Float32Array.from({ length: numel(shape) }, () => low + (high - low) * r()), shape, opts);
}
