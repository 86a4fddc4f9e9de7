/**
 * A kernel is data: its bindings, uniforms, workgroup size, dispatch size and WGSL body, plus a
 * cache key that encodes every specialization of its parameters. The WGSL binding declarations and
 * the uniform struct are generated from the spec so they can never disagree with the host side,
 * and the host side (uniform packing, storage bind group entries) is checked against the same spec.
 *
 * Non-goal: a shader templating language. Kernel bodies are plain WGSL strings; specialization is
 * ordinary TypeScript (string interpolation of constants chosen by `params`).
 */
import { GpuBuffer } from './buffer-pool.js';
import { LimitError } from './errors.js';

export type StorageAccess = 'read' | 'read_write';
/** How a binding is declared: a storage buffer ('read' / 'read_write') or a sampled texture ('texture'). */
export type BindingAccess = StorageAccess | 'texture';
export type ScalarType = 'u32' | 'i32' | 'f32';

export interface BindingSpec<N extends string = string> {
  readonly name: N;
  /**
   * WGSL type of the binding: for storage buffers e.g. `array<f32>`, `array<vec4<f32>>`; for
   * textures e.g. `texture_2d_array<f32>` (read with textureLoad; no sampler).
   */
  readonly type: string;
  readonly access: BindingAccess;
}

export interface UniformSpec<N extends string = string> {
  readonly name: N;
  readonly type: ScalarType;
}

export type Workgroups = readonly [number, number, number];

/** A binding: a whole buffer, or a range of one (offsets must respect minStorageBufferOffsetAlignment). */
export type BufferBinding = GpuBuffer | { buffer: GpuBuffer; offset: number; size: number };
/** A texture binding's resource (for specs with access 'texture'). */
export interface TextureBinding {
  texture: GPUTextureView;
}

export interface DispatchArgs<B extends string, U extends string> {
  /** One resource per binding: a buffer (range) for storage bindings, `{ texture }` for texture bindings. */
  buffers: Readonly<Record<B, BufferBinding | TextureBinding>>;
  uniforms?: Readonly<Record<U, number>>;
}

export interface KernelSpec<P, B extends string, U extends string> {
  /** Human-readable name; appears in every error about this kernel. */
  readonly name: string;
  /** Storage bindings in binding order (binding i = bindings[i]); the uniform block follows them. */
  readonly bindings: readonly BindingSpec<B>[];
  /** Scalar uniforms, available in WGSL as `u.<name>`. */
  readonly uniforms: readonly UniformSpec<U>[];
  /** Workgroup size for these params; available in WGSL as the constants WG_X, WG_Y, WG_Z. */
  readonly workgroupSize: (params: P) => readonly [number, number?, number?];
  /** Number of workgroups to dispatch. */
  readonly dispatch: (params: P, uniforms: Readonly<Record<U, number>>) => Workgroups;
  /** Encodes every specialization in `params`; two params with the same key must give the same WGSL. */
  readonly key: (params: P) => string;
  /** WGSL after the generated header: helper functions and the `@compute fn main(...)` entry point. */
  readonly wgsl: (params: P) => string;
  /** WGSL `enable` directives the body needs (e.g. 'f16', 'subgroups'). */
  readonly enables?: (params: P) => readonly string[];
}

export interface Kernel<P, B extends string, U extends string> extends KernelSpec<P, B, U> {
  /** Full WGSL source (header + body) for these params. */
  source(params: P): string;
  /** Pipeline-cache key: kernel name + specialization key. */
  cacheKey(params: P): string;
}

/** Declares a kernel. `const` type parameters keep binding and uniform names as literal types. */
export function defineKernel<P, const B extends string, const U extends string = never>(
  spec: KernelSpec<P, B, U>,
): Kernel<P, B, U> {
  const names = new Set<string>();
  for (const { name } of [...spec.bindings, ...spec.uniforms]) {
    if (names.has(name)) throw new Error(`kernel '${spec.name}': duplicate binding or uniform '${name}'`);
    names.add(name);
  }
  return {
    ...spec,
    cacheKey: (params) => `${spec.name}|${spec.key(params)}`,
    source(params) {
      const [x, y = 1, z = 1] = spec.workgroupSize(params);
      const lines: string[] = [];
      for (const e of spec.enables?.(params) ?? []) lines.push(`enable ${e};`);
      spec.bindings.forEach((b, i) => {
        lines.push(b.access === 'texture' ? `@group(0) @binding(${i}) var ${b.name}: ${b.type};` : `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: ${b.type};`);
      });
      if (spec.uniforms.length > 0) {
        lines.push(`struct Uniforms { ${spec.uniforms.map((u) => `${u.name}: ${u.type},`).join(' ')} }`);
        lines.push(`@group(0) @binding(${spec.bindings.length}) var<uniform> u: Uniforms;`);
      }
      lines.push(`const WG_X: u32 = ${x}u;`, `const WG_Y: u32 = ${y}u;`, `const WG_Z: u32 = ${z}u;`);
      return `${lines.join('\n')}\n${spec.wgsl(params)}`;
    },
  };
}

/** Bytes of the uniform block for a spec (each scalar is 4 bytes; WebGPU wants a 16-byte multiple). */
export function uniformBytes(uniforms: readonly UniformSpec[]): number {
  return Math.max(16, Math.ceil((uniforms.length * 4) / 16) * 16);
}

/** Packs uniform values in declaration order. */
export function packUniforms<U extends string>(
  kernelName: string,
  uniforms: readonly UniformSpec<U>[],
  values: Readonly<Record<U, number>>,
): ArrayBuffer {
  const data = new ArrayBuffer(uniformBytes(uniforms));
  const view = new DataView(data);
  uniforms.forEach((spec, i) => {
    const v = values[spec.name];
    if (typeof v !== 'number' || (Number.isNaN(v) && spec.type !== 'f32')) {
      throw new Error(`kernel '${kernelName}': uniform '${spec.name}' must be a number, got ${String(v)}`);
    }
    if (spec.type === 'f32') view.setFloat32(i * 4, v, true);
    else if (spec.type === 'u32') {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
        throw new Error(`kernel '${kernelName}': uniform '${spec.name}' (u32) out of range: ${v}`);
      }
      view.setUint32(i * 4, v, true);
    } else {
      if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
        throw new Error(`kernel '${kernelName}': uniform '${spec.name}' (i32) out of range: ${v}`);
      }
      view.setInt32(i * 4, v, true);
    }
  });
  return data;
}

/**
 * Bind group entries for a dispatch's storage buffers and textures, in binding order (the uniform
 * block follows at binding `bindings.length`). Throws naming the binding when its resource is
 * missing, of the wrong kind, released, or a buffer larger than `maxBinding` (the device's
 * maxStorageBufferBindingSize).
 */
export function storageEntries<P, B extends string, U extends string>(
  kernel: Kernel<P, B, U>,
  buffers: Readonly<Record<B, BufferBinding | TextureBinding>>,
  maxBinding: number,
): GPUBindGroupEntry[] {
  return kernel.bindings.map((b, i) => {
    const bound = buffers[b.name];
    if (!bound) throw new Error(`kernel '${kernel.name}': missing ${b.access === 'texture' ? 'texture' : 'buffer'} for binding '${b.name}'`);
    const isTexture = !(bound instanceof GpuBuffer) && 'texture' in bound;
    if ((b.access === 'texture') !== isTexture) {
      throw new Error(`kernel '${kernel.name}': binding '${b.name}' takes a ${b.access === 'texture' ? 'texture ({ texture: view })' : 'buffer'}, got a ${isTexture ? 'texture' : 'buffer'}`);
    }
    if (isTexture) return { binding: i, resource: bound.texture };
    const { buffer, offset, size } = bound instanceof GpuBuffer ? { buffer: bound, offset: 0, size: bound.capacity } : bound;
    if (buffer.isReleased) throw new Error(`kernel '${kernel.name}': binding '${b.name}' uses a released buffer`);
    if (size > maxBinding) {
      throw new LimitError('maxStorageBufferBindingSize', size, maxBinding, `kernel '${kernel.name}' binding '${b.name}'`);
    }
    return { binding: i, resource: { buffer: buffer.buffer, offset, size } };
  });
}

/**
 * Spreads `groups` workgroups over x and y so neither exceeds `maxPerDim` (WebGPU caps each dimension,
 * 65535 by default). Kernels recover the flat index with `wid.x + wid.y * nwg.x`, and must bounds-check
 * since x * y may exceed `groups`.
 */
export function grid1d(groups: number, maxPerDim = 65535): Workgroups {
  if (groups <= maxPerDim) return [Math.max(groups, 1), 1, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y, 1];
}
