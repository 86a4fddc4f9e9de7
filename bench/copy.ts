/**
 * The device's memory roof: a vec4 copy kernel (what a bandwidth-bound kernel can hope for) and the
 * DMA path (copyBufferToBuffer). Every other family's GB/s is reported against `copy_64MB`.
 */
import { defineKernel, grid1d } from '@keel/kernels';
import type { BenchCase } from './harness.js';

const copyVec4 = defineKernel({
  name: 'bench_copy_vec4',
  bindings: [
    { name: 'src', type: 'array<vec4<f32>>', access: 'read' }, // (N/4,)
    { name: 'dst', type: 'array<vec4<f32>>', access: 'read_write' }, // (N/4,)
  ],
  uniforms: [{ name: 'n4', type: 'u32' }],
  workgroupSize: () => [256],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n4 / 256)),
  key: () => '',
  wgsl: () => `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i < u.n4) { dst[i] = src[i]; }
}`,
});

const MB64 = 64 * 2 ** 20;

export const cases: BenchCase[] = [
  {
    name: 'copy_64MB',
    bytes: 2 * MB64,
    async setup(rt) {
      const n = MB64 / 4;
      const data = Float32Array.from({ length: n }, (_, i) => i % 1000);
      const src = rt.upload(data);
      const dst = rt.createBuffer(MB64);
      const run = () => rt.dispatch(copyVec4, undefined, { buffers: { src, dst }, uniforms: { n4: n / 4 } });
      return {
        run,
        async validate() {
          run();
          const out = await rt.readF32(dst);
          for (let i = 0; i < n; i += 4099) if (out[i] !== data[i]) throw new Error(`copy_64MB: wrong value at ${i}`);
        },
        dispose() {
          rt.release(src);
          rt.release(dst);
        },
      };
    },
  },
  {
    name: 'copy_64MB_dma',
    bytes: 2 * MB64,
    async setup(rt) {
      const src = rt.upload(new Float32Array(MB64 / 4).fill(3));
      const dst = rt.createBuffer(MB64);
      return {
        run: () => rt.copy(src, dst),
        async validate() {
          rt.copy(src, dst);
          const out = await rt.readF32(dst, MB64 / 4 - 1, 1);
          if (out[0] !== 3) throw new Error('copy_64MB_dma: wrong value');
        },
        dispose() {
          rt.release(src);
          rt.release(dst);
        },
      };
    },
  },
];
