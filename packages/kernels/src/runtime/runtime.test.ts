import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceLostError, KernelError, LimitError } from './errors.js';
import { defineKernel, grid1d } from './kernel.js';
import { Runtime } from './runtime.js';

// y[i] = a * x[i] + y[i]
const axpy = defineKernel({
  name: 'test_axpy',
  bindings: [
    { name: 'x', type: 'array<f32>', access: 'read' }, // (N,)
    { name: 'y', type: 'array<f32>', access: 'read_write' }, // (N,)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'a', type: 'f32' },
  ],
  workgroupSize: () => [64],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n / 64)),
  key: () => '',
  wgsl: () => `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i >= u.n) { return; }
  y[i] = u.a * x[i] + y[i];
}`,
});

const broken = defineKernel({
  name: 'test_broken_kernel',
  bindings: [{ name: 'y', type: 'array<f32>', access: 'read_write' }],
  uniforms: [],
  workgroupSize: () => [64],
  dispatch: () => [1, 1, 1],
  key: () => '',
  wgsl: () => `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  y[gid.x] = undefined_symbol * 2.0;
}`,
});

let rt: Runtime;
beforeAll(async () => {
  rt = await Runtime.create();
});
afterAll(() => rt.destroy());

describe('Runtime', () => {
  it('reports an adapter with real limits', () => {
    expect(rt.info.adapter.vendor.length + rt.info.adapter.description.length).toBeGreaterThan(0);
    expect(rt.info.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(rt.limits.maxComputeInvocationsPerWorkgroup).toBeGreaterThanOrEqual(256);
  });

  it('round-trips a buffer, including a non-multiple-of-4 length', async () => {
    const data = Float32Array.from({ length: 1001 }, (_, i) => i * 0.5 - 7);
    const buf = rt.upload(data);
    expect(Array.from(await rt.readF32(buf))).toEqual(Array.from(data));
    const bytes = Uint8Array.from([1, 2, 3, 4, 5, 6, 7]);
    const b2 = rt.upload(bytes);
    expect(Array.from(new Uint8Array(await rt.read(b2)))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    rt.release(buf);
    rt.release(b2);
  });

  it('runs a compute kernel and matches the CPU', async () => {
    const n = 1000;
    const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
    const y = Float32Array.from({ length: n }, (_, i) => Math.cos(i));
    const bx = rt.upload(x);
    const by = rt.upload(y);
    rt.dispatch(axpy, undefined, { buffers: { x: bx, y: by }, uniforms: { n, a: 3 } });
    const out = await rt.readF32(by);
    for (let i = 0; i < n; i++) expect(out[i]).toBeCloseTo(3 * x[i]! + y[i]!, 5);
    rt.release(bx);
    rt.release(by);
  });

  it('orders writes after recorded work (reuse of a released buffer inside one batch)', async () => {
    const n = 256;
    const bx = rt.upload(new Float32Array(n).fill(1));
    const by = rt.upload(new Float32Array(n).fill(0));
    rt.dispatch(axpy, undefined, { buffers: { x: bx, y: by }, uniforms: { n, a: 1 } }); // y = 1
    rt.write(bx, new Float32Array(n).fill(10)); // must land after the dispatch above
    rt.dispatch(axpy, undefined, { buffers: { x: bx, y: by }, uniforms: { n, a: 1 } }); // y = 11
    expect((await rt.readF32(by))[n - 1]).toBe(11);
    rt.release(bx);
    rt.release(by);
  });

  it('batches many dispatches into few submits', async () => {
    const n = 64;
    const bx = rt.upload(new Float32Array(n).fill(1));
    const by = rt.upload(new Float32Array(n).fill(0));
    const before = rt.stats().submits;
    for (let k = 0; k < 100; k++) rt.dispatch(axpy, undefined, { buffers: { x: bx, y: by }, uniforms: { n, a: 1 } });
    expect((await rt.readF32(by))[0]).toBe(100);
    expect(rt.stats().submits - before).toBe(1);
    rt.release(bx);
    rt.release(by);
  });

  it('throws a bad WGSL shader as a KernelError naming the kernel and the compiler message', async () => {
    const y = rt.createBuffer(256);
    rt.dispatch(broken, undefined, { buffers: { y } });
    const err = await rt.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KernelError);
    expect((err as KernelError).message).toContain('test_broken_kernel');
    expect((err as KernelError).message).toContain('undefined_symbol');
    await expect(rt.compile(broken, undefined)).rejects.toThrow(/test_broken_kernel/);
    rt.release(y);
    // The runtime stays usable after a reported error.
    const b = rt.upload(new Float32Array([1, 2, 3]));
    expect(Array.from(await rt.readF32(b))).toEqual([1, 2, 3]);
    rt.release(b);
  });

  it('throws a validation error in a submit (binding too small) naming the kernel', async () => {
    const x = rt.createBuffer(4);
    const y = rt.createBuffer(4);
    // a binding range of 0 bytes is invalid for a runtime-sized array
    rt.dispatch(axpy, undefined, { buffers: { x: { buffer: x, offset: 0, size: 0 }, y }, uniforms: { n: 1, a: 1 } });
    await expect(rt.sync()).rejects.toThrow(/test_axpy/);
    rt.release(x);
    rt.release(y);
  });

  it('rejects buffers above the device limits with the limit named', () => {
    expect(() => rt.createBuffer(rt.limits.maxBufferSize + 4)).toThrow(LimitError);
    expect(() => rt.createBuffer(rt.limits.maxBufferSize + 4)).toThrow(/maxBufferSize/);
  });

  it('copies a buffer into a texture that a kernel reads with textureLoad, and rejects bad shapes naming why', async () => {
    const texel = defineKernel({
      name: 'test_texel_sum',
      bindings: [
        { name: 't', type: 'texture_2d_array<f32>', access: 'texture' },
        { name: 'o', type: 'array<f32>', access: 'read_write' },
      ],
      uniforms: [],
      workgroupSize: () => [16],
      dispatch: () => [1, 3, 2],
      key: () => '',
      wgsl: () => `
@compute @workgroup_size(WG_X)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let v = textureLoad(t, vec2<u32>(lid.x, wid.y), wid.z, 0);
  o[((wid.z * 3u + wid.y) * 16u + lid.x)] = v.x + 10.0 * v.y + 100.0 * v.z + 1000.0 * v.w;
}`,
    });
    // 2 layers × 3 rows × 16 texels (a row: 64 floats = 256 bytes), from byte offset 256.
    const data = new Float32Array(64 + 2 * 3 * 64).map((_, i) => (i % 7) + 0.25 * (i % 3));
    const src = rt.upload(data);
    const out = rt.createBuffer(2 * 3 * 16 * 4);
    const kernels = [texel];
    if (rt.wgslFeatures.has('readonly_and_readwrite_storage_textures')) {
      kernels.push(
        defineKernel({
          ...texel,
          name: 'test_texel_sum_storage',
          bindings: [{ name: 't', type: 'texture_storage_2d_array<rgba32float, read>', access: 'texture' }, texel.bindings[1]!],
          wgsl: () => texel.wgsl(undefined).replace('wid.z, 0)', 'wid.z)'),
        }),
      );
    }
    for (const kernel of kernels) {
      rt.dispatch(kernel, undefined, { buffers: { t: { texture: rt.textureFromBuffer(src, 256, 16, 3, 2) }, o: out } });
      const got = await rt.readF32(out);
      for (let i = 0; i < 2 * 3 * 16; i++) {
        const f = data.subarray(64 + 4 * i, 64 + 4 * i + 4);
        expect(got[i], kernel.name).toBeCloseTo(f[0]! + 10 * f[1]! + 100 * f[2]! + 1000 * f[3]!, 3);
      }
    }
    expect(() => rt.textureFromBuffer(src, 0, 15, 1, 1)).toThrow(/a row of 240 bytes is not a multiple of 256/);
    expect(() => rt.textureFromBuffer(src, 8, 16, 1, 1)).toThrow(/byteOffset 8 is not a multiple of 16/);
    expect(() => rt.textureFromBuffer(src, 0, 16, 1, 1, 'rgba16float')).toThrow(/a row of 128 bytes is not a multiple of 256/);
    expect(() => rt.textureFromBuffer(src, 0, 16, 8, 1)).toThrow(/overflow the buffer/);
    expect(() => rt.textureFromBuffer(src, 0, 16, 0, 1)).toThrow(/height must be a positive integer, got 0/);
    const big = rt.limits.maxTextureDimension2D + 16;
    const wide = rt.createBuffer(big * 16);
    expect(() => rt.textureFromBuffer(wide, 0, big, 1, 1)).toThrow(LimitError);
    expect(() => rt.dispatch(texel, undefined, { buffers: { t: src, o: out } })).toThrow(/binding 't' takes a texture \(\{ texture: view \}\), got a buffer/);
    [src, out, wide].forEach((b) => rt.release(b));
  });

  it('returns the live buffer count to zero after releases, and reuses pooled buffers', async () => {
    const start = rt.stats();
    const bufs = Array.from({ length: 20 }, (_, i) => rt.upload(new Float32Array(100 + i)));
    expect(rt.stats().liveBuffers - start.liveBuffers).toBe(20);
    bufs.forEach((b) => rt.release(b));
    await rt.sync();
    expect(rt.stats().liveBuffers).toBe(start.liveBuffers);
    const created = rt.stats().created;
    const again = Array.from({ length: 20 }, (_, i) => rt.createBuffer(400 + 4 * i));
    expect(rt.stats().created).toBe(created);
    again.forEach((b) => rt.release(b));
    expect(rt.stats().liveBuffers).toBe(start.liveBuffers);
    expect(rt.stats().liveBytes).toBe(start.liveBytes);
    expect(() => rt.release(again[0]!)).toThrow(/released twice/);
  });

  it('tracks the peak of live bytes until resetPeak()', () => {
    rt.resetPeak();
    const base = rt.stats().liveBytes;
    expect(rt.stats().peakLiveBytes).toBe(base);
    const a = rt.createBuffer(1 << 20);
    const b = rt.createBuffer(1 << 20);
    const high = rt.stats().liveBytes;
    rt.release(a);
    rt.release(b);
    expect(rt.stats().liveBytes).toBe(base);
    expect(rt.stats().peakLiveBytes).toBe(high);
    expect(high - base).toBeGreaterThanOrEqual(2 << 20);
    rt.resetPeak();
    expect(rt.stats().peakLiveBytes).toBe(base);
  });
});

describe('device loss', () => {
  it('rejects pending readbacks and later calls with DeviceLostError, without hanging', async () => {
    const own = await Runtime.create();
    const buf = own.upload(new Float32Array(1 << 16));
    const pending = own.read(buf);
    own.destroy();
    await expect(pending).rejects.toBeInstanceOf(DeviceLostError);
    expect(() => own.createBuffer(16)).toThrow(DeviceLostError);
    await expect(own.sync()).rejects.toThrow(/device lost/);
  });

  it('reports destroy() as the cause, also after the device has signalled the loss', async () => {
    const own = await Runtime.create();
    own.destroy();
    await own.device.lost; // the runtime's own lost handler has run by now
    const err = await own.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeviceLostError);
    expect((err as DeviceLostError).message).toContain('Runtime.destroy() was called');
  });
});
