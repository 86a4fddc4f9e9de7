/**
 * The subgroup matmul kernels: the fast path of `matmul` (ops/matmul.ts) on devices with the
 * 'subgroups' feature and subgroups of at least 8 invocations. Same contract as `matmul`:
 * C[b] = op(A[b])·op(B[b]) (+ bias) (+ C[b]), f32 storage and accumulation, both transposes,
 * broadcast operands, sumBatch. matmul.ts validates the arguments and picks this path; this file
 * builds the 'cols' kernel and records both layouts (the 'rows' kernels are built in
 * ops/matmul-rows.ts).
 *
 * Dimension legend: B batch, M rows of C, N columns of C, K the contracted dimension.
 *   A: (B, M, K), or (B, K, M) with transA      B: (B, K, N), or (B, N, K) with transB
 *   C: (B, M, N)                                 bias: (N,) or (M,)
 *
 * Two layouts of the work, both register-blocked with one operand shared through subgroup
 * broadcasts instead of workgroup memory:
 *
 * 'rows' (the default where K % 4 == 0; a transposed A is read in place or packed, see below).
 *   Invocation x of a workgroup owns R = 3 rows of C (x, x + WG, x + 2·WG of the workgroup's row
 *   block) × the workgroup's TN = 16 columns: 12 vec4 accumulators. A is read as vec4s along k
 *   (one load = 4 k-steps of a row);
 *   B is read cooperatively: for every 8 k-steps, lane l loads row k + l of the workgroup's
 *   columns (4 vec4s) and the 8 k-steps take it from lane kk with subgroupBroadcast (a constant
 *   lane, so a register splat). Per 8 k-steps a lane loads 10 vec4s for 384 multiply-adds.
 *   Where an operand's rows are a multiple of 64 floats (WebGPU's 256-byte bytesPerRow) and it
 *   fits the texture limits, it is first copied (copyBufferToTexture, a device-side copy) into an
 *   rgba32float 2D-array texture, one layer per batch, and read with textureLoad. An operand
 *   stored as f16 (matmul's dtypeA / dtypeB) is always read this way, from an rgba16float texture
 *   (rows of a multiple of 128 halves, untransposed): textureLoad widens it to f32 for free.
 * 'cols' (K % 4 != 0). A workgroup is one row of WG_X invocations and owns TM = 10
 *   rows × 4·WG_X columns; each invocation owns the TM rows × 4 consecutive columns (TM vec4
 *   accumulators). For every 8-wide step of K, lane l loads A[row][k + l] for each of the TM rows
 *   and the 8 k-steps take A[row][k + kk] from lane kk with subgroupBroadcast; B is one vec4 load
 *   per lane and k-step. transA only changes the A address. K mod 8 trailing steps run a plain
 *   loop with direct A loads.
 * transB is handled by a pack pass (B (N, K) → (K, N), layout.ts's transpose) into a temporary
 * buffer, counted in the time of the matmul; then either layout reads B row-major. The rows
 * layout reads a transposed A (K, M) in place where M is a multiple of 64 and it fits a texture:
 * a texel is then 4 consecutive rows at one k, and each invocation owns those 4 rows; otherwise it
 * packs A ((K, M) → (M, K)) first. 'cols' reads a transposed A in place.
 *
 * Why (measured in bench/matmul.ts on lavapipe, where a subgroup is one 8-wide SIMD register and
 * the JIT code was read with GALLIVM_DEBUG=asm): a storage-buffer load whose address varies per
 * lane is emitted as a loop over the 8 lanes with an execution-mask test, a reload of the buffer's
 * base and size, and a bounds-check branch per component, so a vec4 load costs about what a scalar
 * one does and loads, not multiply-adds, bound the kernel. A load whose address is only uniform
 * at run time (it depends on the loop counter) takes the same per-lane path, so neither layout
 * loads uniformly. The rows layout needs fewer loaded elements per multiply-add than 'cols' at the
 * same register budget and reads both operands as vec4s; a texel fetch is branch-free vector
 * code (no per-lane loop), which is why the texture copies pay for themselves. Measured at 1024³:
 * 'rows' with buffers ~1.2–1.6× 'cols', with textures another ~1.1–1.3×. Dead ends, for the
 * record: operand panels in uniform buffers (branch-free gathers, but 64 KiB bindings force 64–1024
 * dispatches of ~11–15 µs each and gain nothing), k-dependent "uniform" loads (per-lane path),
 * larger register blocks (spill). On GPUs the same structure is a register-blocked GEMM whose
 * shared operand moves through subgroup shuffles instead of workgroup memory, and textureLoad
 * goes through the texture cache.
 *
 * Requirements (checked by `subgroupMatmulFits`): the 'subgroups' feature with a minimum subgroup
 * size ≥ 8 (the 8 k-values of a step live in lanes 0..7), N % 4 == 0 (vec4 columns and stores).
 * Workgroup widths are powers of two ≥ 8, so a subgroup is either whole or the whole workgroup.
 *
 * Non-goals: f16, K split across workgroups, shapes the tiled kernel handles as well (tiny or
 * N % 4 != 0 products fall back to it).
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import { defineKernel, type Kernel } from '../runtime/kernel.js';
import type { Runtime } from '../runtime/runtime.js';
import { transpose } from './layout.js';
import {
  ROWS_MATMUL_R,
  ROWS_MATMUL_TN,
  rowsMatmulKernel,
  storageTextureReads,
  SUBGROUP_MATMUL_UNIFORMS,
  textureFits,
  type OperandSource,
  type SubgroupMatmulUniform,
} from './matmul-rows.js';

export { ROWS_MATMUL_R, ROWS_MATMUL_TN, storageTextureReads, textureFits, type OperandSource, type RowsMatmulParams, type SubgroupMatmulUniform } from './matmul-rows.js';

export interface SubgroupMatmulParams {
  /** Rows of C per workgroup (vec4 accumulators per invocation). */
  tm: number;
  /** Invocations per workgroup (a power of two ≥ 8); each owns 4 columns. */
  wgx: number;
  transA: boolean;
}

type SubgroupMatmulKernel = Kernel<SubgroupMatmulParams, 'a' | 'b' | 'bias' | 'c', SubgroupMatmulUniform>;

/** Rows per workgroup of the library path (see the header for why 10). */
export const SUBGROUP_MATMUL_TM = 10;


const subgroupMatmulKernel: SubgroupMatmulKernel = defineKernel({
  name: 'matmul_subgroup',
  bindings: [
    { name: 'a', type: 'array<f32>', access: 'read' }, // (B|1, M, K) or (B|1, K, M)
    { name: 'b', type: 'array<vec4<f32>>', access: 'read' }, // (B|1, K, N), N % 4 == 0
    { name: 'bias', type: 'array<f32>', access: 'read' }, // (N,) or (M,); A as a dummy without bias
    { name: 'c', type: 'array<vec4<f32>>', access: 'read_write' }, // (B, M, N), N % 4 == 0
  ],
  uniforms: SUBGROUP_MATMUL_UNIFORMS.map((name) => ({ name, type: 'u32' as const })),
  workgroupSize: (p) => [p.wgx, 1],
  dispatch: (p, u) => [Math.ceil(u.N / (4 * p.wgx)), Math.ceil(u.M / p.tm), u.batchC],
  key: (p) => `${p.tm}@${p.wgx}|${p.transA ? 'T' : 'N'}`,
  enables: () => ['subgroups'],
  wgsl: subgroupMatmulWgsl,
});

/** WGSL for one specialization; the TM rows and the 8 k-steps are unrolled here in TypeScript. */
function subgroupMatmulWgsl(p: SubgroupMatmulParams): string {
  const rows = [...Array(p.tm).keys()];
  const L: string[] = []; // per-batch setup
  // A element (row r, contraction index expression kx), in elements.
  if (!p.transA) {
    for (const r of rows) L.push(`let aRow${r} = aBase + min(m0 + ${r}u, u.M - 1u) * u.K;`);
  } else {
    for (const r of rows) L.push(`let aCol${r} = aBase + min(m0 + ${r}u, u.M - 1u);`);
  }
  const aAt = (r: number, kx: string) => (p.transA ? `a[aCol${r} + (${kx}) * u.M]` : `a[aRow${r} + ${kx}]`);
  // B vec4 (columns n0..n0+3) at contraction index kx.
  L.push('let bCol = bBase + min(n0, u.N - 4u);');
  const bAt = (kx: string) => `b[(bCol + (${kx}) * u.N) >> 2u]`;

  const main: string[] = [];
  for (const r of rows) main.push(`let av${r} = ${aAt(r, 'k + lane8')};`);
  for (let kk = 0; kk < 8; kk++) {
    main.push(`let b${kk} = ${bAt(`k + ${kk}u`)};`);
    for (const r of rows) main.push(`acc${r} = fma(vec4<f32>(subgroupBroadcast(av${r}, ${kk}u)), b${kk}, acc${r});`);
  }
  const tail: string[] = ['let bt = ' + bAt('k') + ';'];
  for (const r of rows) tail.push(`acc${r} = fma(vec4<f32>(${aAt(r, 'k')}), bt, acc${r});`);

  // Epilogue, as in the tiled kernel: biasMode 1 adds bias[n], 2 adds bias[m]; accumulate adds C.
  const E: string[] = ['let biasN = u.biasMode == 1u;', 'let biasM = u.biasMode == 2u;', 'let addC = u.accumulate != 0u;'];
  E.push('var zn = vec4<f32>(0.0);', `if (biasN) { zn = vec4<f32>(${[0, 1, 2, 3].map((j) => `bias[min(n0 + ${j}u, u.N - 1u)]`).join(', ')}); }`);
  E.push('if (n0 < u.N) {');
  for (const r of rows) {
    E.push(`  if (m0 + ${r}u < u.M) {`);
    E.push(`    var v = acc${r} + zn;`, `    if (biasM) { v += vec4<f32>(bias[m0 + ${r}u]); }`);
    E.push(`    let i = (cBase + (m0 + ${r}u) * u.N + n0) >> 2u;`, '    if (addC) { v += c[i]; }', '    c[i] = v;', '  }');
  }
  E.push('}');

  return /* wgsl */ `
// Invocation x of workgroup (X, Y, Z) owns C[Z][m0 .. m0+${p.tm}, n0 .. n0+4]; with perGroup > 1 it
// sums batches Z·perGroup .. Z·perGroup + perGroup - 1 (sumBatch). No early return: every lane
// takes part in the subgroup broadcasts, and out-of-range lanes load clamped (in-bounds) data.
@compute @workgroup_size(WG_X, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) sgid: u32) {
  let n0 = (wid.x * WG_X + lid.x) * 4u;
  let m0 = wid.y * ${p.tm}u;
  let lane8 = sgid & 7u;
  let K8 = u.K & ~7u;
  ${rows.map((r) => `var acc${r} = vec4<f32>(0.0);`).join('\n  ')}
  for (var t = 0u; t < u.perGroup; t++) {
    let bt = wid.z * u.perGroup + t;
    let aBase = bt * u.strideA;
    let bBase = bt * u.strideB;
    ${L.join('\n    ')}
    for (var k = 0u; k < K8; k += 8u) {
      ${main.join('\n      ')}
    }
    for (var k = K8; k < u.K; k++) {
      ${tail.join('\n      ')}
    }
  }
  let cBase = wid.z * u.strideC;
  ${E.join('\n  ')}
}`;
}

/** The adapter's subgroup size range, where the implementation reports it (Dawn does); 0 if unknown. */
function subgroupSizes(rt: Runtime): { min: number; max: number } {
  const info = (rt.device as unknown as { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
  return { min: info?.subgroupMinSize ?? 0, max: info?.subgroupMaxSize ?? 0 };
}

/** Whether the subgroup kernel can run op(A)·op(B) with C of M×N on this device (see the header). */
export function subgroupMatmulFits(rt: Runtime, d: { m: number; n: number }): boolean {
  return rt.has('subgroups') && subgroupSizes(rt).min >= 8 && d.n % 4 === 0 && d.n > 0 && d.m > 0;
}

/**
 * Workgroup width for N columns on a device whose subgroups have at most `maxSubgroup` lanes: 8 or
 * 16 lanes (64 columns) — on lavapipe 8–32 measured alike and 64+ slower, and a narrow workgroup
 * wastes no lanes on small N — but never narrower than one whole subgroup (GPUs with 32- or
 * 64-wide subgroups would otherwise run partly empty subgroups).
 */
export function subgroupMatmulWidth(n: number, maxSubgroup: number): number {
  let w = n > 32 ? 16 : 8;
  while (w < maxSubgroup && w < 256) w *= 2;
  return w;
}

export interface SubgroupMatmulDispatch {
  a: { buffer: GpuBuffer; offset: number; size: number };
  b: { buffer: GpuBuffer; offset: number; size: number };
  bias: { buffer: GpuBuffer; offset: number; size: number };
  c: { buffer: GpuBuffer; offset: number; size: number };
  uniforms: Record<SubgroupMatmulUniform, number>;
  transA: boolean;
  /** B is stored (batchB, N, K): packed to (batchB, K, N) first. */
  transB: boolean;
  /** Batch count of B (1 when broadcast); sizes the pack. */
  batchB: number;
  /** Overrides (benchmarks and tests): the layout, and the cols layout's rows per workgroup and width. */
  layout?: SubgroupMatmulLayout;
  tm?: number;
  wgx?: number;
  /** Overrides of the rows layout: rows per invocation and columns per workgroup. */
  rows?: number;
  tn?: number;
  /** Overrides of the rows layout's operand sources (default: a texture wherever one fits). */
  aSource?: OperandSource;
  bSource?: OperandSource;
  /** Override (tests): read textures as storage textures (default where WGSL can) or sampled ones. */
  storageTextures?: boolean;
  /** A / B stored as f16: rows layout only, untransposed, through an rgba16float texture (see `textureFits`). */
  f16A?: boolean;
  f16B?: boolean;
}

/**
 * The two layouts of the subgroup path: 'cols' (lanes own columns, A broadcast) and 'rows' (lanes
 * own rows, B broadcast; needs K % 4 == 0, reads A untransposed: transA packs it first).
 */
export type SubgroupMatmulLayout = 'cols' | 'rows';

/** The layout `dispatchSubgroupMatmul` uses by default: rows wherever it can run (see the header). */
export function subgroupMatmulLayout(d: { k: number }): SubgroupMatmulLayout {
  return d.k % 4 === 0 ? 'rows' : 'cols';
}

/**
 * Records the subgroup kernel, after transpose packs of A (transA, rows layout) and B (transB),
 * whose temporaries are released once recorded; matmul.ts has validated shapes and buffers.
 */
export function dispatchSubgroupMatmul(rt: Runtime, d: SubgroupMatmulDispatch): void {
  const { M, N, K, strideA, strideB, batchC, perGroup } = d.uniforms;
  const layout = d.layout ?? subgroupMatmulLayout({ k: K });
  const batch = batchC * perGroup;
  const temps: GpuBuffer[] = [];
  /** op(X) stored (batches, rows, cols) → a packed (batches, cols, rows) copy. */
  const pack = (x: SubgroupMatmulDispatch['a'], rows: number, cols: number, batches: number, what: 'A' | 'B') => {
    if (x.offset !== 0) throw new Error(`matmul (subgroup): trans${what} needs ${what} bound from offset 0`);
    const packed = transpose(rt, x.buffer, [batches, rows, cols]);
    temps.push(packed);
    return { buffer: packed, offset: 0, size: Math.min(packed.capacity, Math.ceil(Math.max(batches * rows * cols, 4) / 4) * 16) };
  };
  const [f16A, f16B] = [d.f16A ?? false, d.f16B ?? false];
  if ((f16A && (d.transA || layout !== 'rows')) || (f16B && d.transB)) {
    throw new Error(`matmul (subgroup): f16 operands need the rows layout and no transpose (transA ${d.transA}, transB ${d.transB}, layout ${layout})`);
  }
  const b = d.transB ? pack(d.b, N, K, d.batchB, 'B') : d.b; // (batchB, K, N)
  if (layout === 'rows') {
    if (K % 4 !== 0) throw new Error(`matmul (subgroup): the rows layout needs K % 4 == 0, got K = ${K}`);
    const layersA = strideA === 0 ? 1 : batch;
    // A transposed: read in place as (K, M) texels where that texture fits, else packed to (M, K).
    const aT = d.aSource === 'textureT' || (d.transA && d.aSource === undefined && textureFits(rt, { rowFloats: M, rows: K, layers: layersA, offset: d.a.offset }));
    if (aT && !d.transA) throw new Error("matmul (subgroup): aSource 'textureT' reads a transposed A; transA is false");
    if (aT && d.rows !== undefined && d.rows !== 4) throw new Error(`matmul (subgroup): aSource 'textureT' owns 4 rows per invocation, got rows ${d.rows}`);
    const a = d.transA && !aT ? pack(d.a, K, M, layersA, 'A') : d.a; // (batchA, M, K), or (batchA, K, M) read as texels
    const r = aT ? 4 : (d.rows ?? ROWS_MATMUL_R);
    const tn = d.tn ?? ROWS_MATMUL_TN;
    const wg = d.wgx ?? Math.max(8, subgroupSizes(rt).max);
    if (!Number.isInteger(r) || r < 1 || r > 8) throw new Error(`matmul (subgroup): rows must be an integer in [1, 8], got ${r}`);
    if (!Number.isInteger(tn) || tn < 4 || tn > 32 || tn % 4 !== 0) throw new Error(`matmul (subgroup): tn must be a multiple of 4 in [4, 32], got ${tn}`);
    if (!(wg >= 8 && wg <= 256 && (wg & (wg - 1)) === 0)) throw new Error(`matmul (subgroup): wgx must be a power of two in [8, 256], got ${wg}`);
    const opA = aT ? { rowFloats: M, rows: K, layers: layersA, offset: a.offset, f16: false } : { rowFloats: K, rows: M, layers: layersA, offset: a.offset, f16: f16A };
    const opB = { rowFloats: N, rows: K, layers: strideB === 0 ? 1 : batch, offset: b.offset, f16: f16B };
    const aSrc: OperandSource = aT ? 'textureT' : f16A ? 'texture' : (d.aSource ?? (textureFits(rt, opA) ? 'texture' : 'buffer'));
    const bSrc = f16B ? 'texture' : (d.bSource ?? (textureFits(rt, opB) ? 'texture' : 'buffer'));
    const viaTexture = (x: SubgroupMatmulDispatch['a'], o: typeof opA) => ({
      texture: rt.textureFromBuffer(x.buffer, x.offset, o.rowFloats / 4, o.rows, o.layers, o.f16 ? 'rgba16float' : 'rgba32float'),
    });
    const bound = { a: aSrc !== 'buffer' ? viaTexture(a, opA) : a, b: bSrc === 'texture' ? viaTexture(b, opB) : b, bias: d.bias, c: d.c };
    rt.dispatch(rowsMatmulKernel(aSrc, bSrc, d.storageTextures ?? storageTextureReads(rt), f16A, f16B), { r, tn, wg }, { buffers: bound, uniforms: d.uniforms });
  } else {
    if (layout !== 'cols') throw new Error(`matmul (subgroup): layout must be 'cols' or 'rows', got ${String(layout)}`);
    const wgx = d.wgx ?? subgroupMatmulWidth(N, subgroupSizes(rt).max);
    const tm = d.tm ?? SUBGROUP_MATMUL_TM;
    if (!Number.isInteger(tm) || tm < 1 || tm > 16) throw new Error(`matmul (subgroup): tm must be an integer in [1, 16], got ${tm}`);
    if (!(wgx >= 8 && wgx <= 256 && (wgx & (wgx - 1)) === 0)) throw new Error(`matmul (subgroup): wgx must be a power of two in [8, 256], got ${wgx}`);
    rt.dispatch(subgroupMatmulKernel, { tm, wgx, transA: d.transA }, { buffers: { a: d.a, b, bias: d.bias, c: d.c }, uniforms: d.uniforms });
  }
  temps.forEach((t) => rt.release(t)); // safe while the recorded dispatch still reads them
}
