/**
 * The 'rows' layout of the subgroup matmul path: its kernels (one per pair of operand sources) and
 * the checks of when an operand can be read through a texture. ops/matmul-subgroup.ts describes the
 * layout and why, and records it (`dispatchSubgroupMatmul`); this file only builds the kernels.
 *
 * Dimension legend: B batch, M rows of C, N columns of C, K the contracted dimension.
 */
import { defineKernel, type Kernel } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';

export type SubgroupMatmulUniform = 'M' | 'N' | 'K' | 'strideA' | 'strideB' | 'strideC' | 'perGroup' | 'batchC' | 'biasMode' | 'accumulate';
/** The uniforms of both subgroup layouts, in declaration order. */
export const SUBGROUP_MATMUL_UNIFORMS: SubgroupMatmulUniform[] = ['M', 'N', 'K', 'strideA', 'strideB', 'strideC', 'perGroup', 'batchC', 'biasMode', 'accumulate'];

export interface RowsMatmulParams {
  /** Rows of C per invocation (spaced by the workgroup width). */
  r: number;
  /** Columns of C per workgroup (a multiple of 4: tn/4 vec4 accumulators per row). */
  tn: number;
  /** Invocations per workgroup (a power of two ≥ 8). */
  wg: number;
}
type RowsMatmulKernel = Kernel<RowsMatmulParams, 'a' | 'b' | 'bias' | 'c', SubgroupMatmulUniform>;

/**
 * Where the rows layout reads an operand: its storage buffer, or a texture copy of it. For A only,
 * 'textureT': A stored transposed (K, M) as a texture of M/4 × K texels, one texel = 4 consecutive
 * rows at one k; each invocation then owns 4 consecutive rows (rows = 4) and no transpose pack runs.
 */
export type OperandSource = 'buffer' | 'texture' | 'textureT';
const SOURCE_ID: Record<OperandSource, string> = { buffer: 'b', texture: 't', textureT: 'T' };

/** Rows per invocation and columns per workgroup of the library's rows layout (see ops/matmul-subgroup.ts). */
export const ROWS_MATMUL_R = 3;
export const ROWS_MATMUL_TN = 16;

const rowsKernels = new Map<string, RowsMatmulKernel>();
/**
 * The rows kernel reading A and B from the given sources (one kernel per pair: bindings differ).
 * Textures are bound as read-only storage textures where WGSL has them (no mip level or sampler
 * state: on lavapipe ~1.4× faster loads than a sampled texture's textureLoad), else sampled.
 */
export function rowsMatmulKernel(aSrc: OperandSource, bSrc: OperandSource, storageTex: boolean, f16A = false, f16B = false): RowsMatmulKernel {
  const id = `${SOURCE_ID[aSrc]}${f16A ? 'h' : ''}${SOURCE_ID[bSrc]}${f16B ? 'h' : ''}${storageTex ? 's' : ''}`;
  let k = rowsKernels.get(id);
  if (!k) {
    const operand = (name: 'a' | 'b', src: OperandSource, f16: boolean) =>
      src !== 'buffer'
        ? { name, type: storageTex ? `texture_storage_2d_array<${f16 ? 'rgba16float' : 'rgba32float'}, read>` : 'texture_2d_array<f32>', access: 'texture' as const }
        : { name, type: 'array<vec4<f32>>', access: 'read' as const };
    if ((f16A && aSrc !== 'texture') || (f16B && bSrc !== 'texture')) throw new Error('matmul (subgroup): f16 operands are read from (untransposed) textures only');
    if (bSrc === 'textureT') throw new Error("matmul (subgroup): 'textureT' is a source of A only");
    k = defineKernel({
      name: `matmul_subgroup_rows_${id}`,
      bindings: [
        operand('a', aSrc, f16A), // (B|1, M, K), K % 4 == 0; as a texture: K/4 × M texels, one layer per batch
        operand('b', bSrc, f16B), // (B|1, K, N), N % 4 == 0; as a texture: N/4 × K texels, one layer per batch
        { name: 'bias', type: 'array<f32>', access: 'read' }, // (N,) or (M,); A as a dummy without bias
        { name: 'c', type: 'array<vec4<f32>>', access: 'read_write' }, // (B, M, N)
      ],
      uniforms: SUBGROUP_MATMUL_UNIFORMS.map((name) => ({ name, type: 'u32' as const })),
      workgroupSize: (p: RowsMatmulParams) => [p.wg, 1],
      dispatch: (p: RowsMatmulParams, u) => [Math.ceil(u.N / p.tn), Math.ceil(u.M / (p.wg * p.r)), u.batchC],
      key: (p: RowsMatmulParams) => `${p.r}x${p.tn}@${p.wg}`,
      enables: () => ['subgroups'],
      wgsl: (p: RowsMatmulParams) => rowsMatmulWgsl(p, aSrc, bSrc, storageTex),
    });
    rowsKernels.set(id, k);
  }
  return k;
}

/** WGSL for one rows specialization; rows, column groups and the 8 k-steps are unrolled here. */
function rowsMatmulWgsl(p: RowsMatmulParams, aSrc: OperandSource, bSrc: OperandSource, storageTex: boolean): string {
  const R = [...Array(p.r).keys()];
  const Q = [...Array(p.tn / 4).keys()];
  /** One block of `steps` (8, or 4 for the K % 8 tail) k-steps starting at k. */
  const block = (steps: 4 | 8, bRow: string): string[] => {
    const S: string[] = [];
    for (const q of Q) S.push(bSrc === 'texture' ? `let bq${q} = textureLoad(b, vec2<u32>(bCol${q}, ${bRow}), layerB${storageTex ? '' : ', 0'});` : `let bq${q} = b[(bCol${q} + (${bRow}) * u.N) >> 2u];`);
    const lvl = storageTex ? '' : ', 0';
    if (aSrc === 'textureT') {
      for (let kk = 0; kk < steps; kk++) S.push(`let at${kk} = textureLoad(a, vec2<u32>(aQuad, k + ${kk}u), layerA${lvl});`);
    } else {
      for (const i of R) {
        for (let h = 0; h < steps / 4; h++) S.push(aSrc === 'texture' ? `let a${i}_${h} = textureLoad(a, vec2<u32>((k >> 2u) + ${h}u, aRow${i}), layerA${lvl});` : `let a${i}_${h} = a[aRow${i} + (k >> 2u) + ${h}u];`);
      }
    }
    /** A[m_i][k + kk] as a scalar expression. */
    const aAt = (i: number, kk: number) => (aSrc === 'textureT' ? `at${kk}[${i}]` : `a${i}_${kk >> 2}[${kk & 3}]`);
    for (let kk = 0; kk < steps; kk++) {
      for (const q of Q) S.push(`let bb${kk}_${q} = subgroupBroadcast(bq${q}, ${kk}u);`);
      for (const i of R) for (const q of Q) S.push(`acc${i}_${q} = fma(vec4<f32>(${aAt(i, kk)}), bb${kk}_${q}, acc${i}_${q});`);
    }
    return S;
  };
  const E: string[] = ['let biasN = u.biasMode == 1u;', 'let biasM = u.biasMode == 2u;', 'let addC = u.accumulate != 0u;', 'let cBase = wid.z * u.strideC;'];
  for (const q of Q) {
    E.push(`var zn${q} = vec4<f32>(0.0);`, `if (biasN) { zn${q} = vec4<f32>(${[0, 1, 2, 3].map((j) => `bias[min(n0 + ${4 * q + j}u, u.N - 1u)]`).join(', ')}); }`);
  }
  for (const i of R) {
    E.push(`if (m${i} < u.M) {`, `  var zm = vec4<f32>(0.0);`, `  if (biasM) { zm = vec4<f32>(bias[m${i}]); }`);
    for (const q of Q) {
      E.push(`  if (n0 + ${4 * q}u < u.N) {`, `    var v = acc${i}_${q} + zn${q} + zm;`, `    let o = (cBase + m${i} * u.N + n0 + ${4 * q}u) >> 2u;`, '    if (addC) { v += c[o]; }', '    c[o] = v;', '  }');
    }
    E.push('}');
  }
  return /* wgsl */ `
// Invocation x of workgroup (X, Y, Z) owns rows ${aSrc === 'textureT' ? 'm_i = (Y·WG_X + x)·4 + i (i < 4; A read transposed)' : `m_i = Y·WG_X·${p.r} + i·WG_X + x (i < ${p.r})`} and columns
// n0 .. n0+${p.tn} (n0 = X·${p.tn}) of C[Z]; with perGroup > 1 it sums batches Z·perGroup .. + perGroup - 1.
// No early return: every lane takes part in the broadcasts; out-of-range rows and columns load
// clamped (in-bounds) data and are not stored.
@compute @workgroup_size(WG_X, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) sgid: u32) {
  let n0 = wid.x * ${p.tn}u;
  let lane8 = sgid & 7u;
  let K8 = u.K & ~7u;
  ${R.map((i) => (aSrc === 'textureT' ? `let m${i} = (wid.y * WG_X + lid.x) * 4u + ${i}u;` : `let m${i} = wid.y * ${p.r}u * WG_X + ${i}u * WG_X + lid.x;`)).join('\n  ')}
  ${R.flatMap((i) => Q.map((q) => `var acc${i}_${q} = vec4<f32>(0.0);`)).join('\n  ')}
  for (var t = 0u; t < u.perGroup; t++) {
    let bt = wid.z * u.perGroup + t;
    ${aSrc !== 'buffer' ? 'let layerA = select(0u, bt, u.strideA != 0u);' : ''}
    ${aSrc === 'textureT' ? 'let aQuad = min(m0, u.M - 4u) >> 2u;' : ''}
    ${bSrc === 'texture' ? 'let layerB = select(0u, bt, u.strideB != 0u);' : ''}
    ${aSrc === 'textureT' ? '' : R.map((i) => (aSrc === 'texture' ? `let aRow${i} = min(m${i}, u.M - 1u);` : `let aRow${i} = (bt * u.strideA + min(m${i}, u.M - 1u) * u.K) >> 2u;`)).join('\n    ')}
    ${Q.map((q) => (bSrc === 'texture' ? `let bCol${q} = min(n0 + ${4 * q}u, u.N - 4u) >> 2u;` : `let bCol${q} = bt * u.strideB + min(n0 + ${4 * q}u, u.N - 4u);`)).join('\n    ')}
    for (var k = 0u; k < K8; k += 8u) {
      ${block(8, 'k + lane8').join('\n      ')}
    }
    if (K8 < u.K) {
      let k = K8;
      ${block(4, 'min(k + lane8, u.K - 1u)').join('\n      ')}
    }
  }
  ${E.join('\n  ')}
}`;
}

/** Whether WGSL on this runtime can read storage textures (texture_storage_2d_array<…, read>). */
export function storageTextureReads(rt: Runtime): boolean {
  return rt.wgslFeatures.has('readonly_and_readwrite_storage_textures');
}

/**
 * Whether an operand of `layers` × `rows` rows of `rowFloats` elements (from byte `offset` of its
 * buffer) can be copied into an rgba32float (rgba16float with f16) texture for the rows layout:
 * rows of a multiple of 256 bytes (WebGPU's bytesPerRow: 64 floats, 128 halves), an offset aligned
 * to the texel, and the device's texture limits.
 */
export function textureFits(rt: Runtime, o: { rowFloats: number; rows: number; layers: number; offset: number; f16?: boolean }): boolean {
  const maxDim = rt.limits.maxTextureDimension2D;
  const bytes = o.f16 ? 2 : 4; // per element; a texel holds 4
  return (o.rowFloats * bytes) % 256 === 0 && o.offset % (4 * bytes) === 0 && o.rowFloats / 4 <= maxDim && o.rows <= maxDim && o.layers <= rt.limits.maxTextureArrayLayers;
}
