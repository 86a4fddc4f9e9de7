/**
 * PiSSA (Meng et al. 2024): LoRA started from the principal singular components of W instead of
 * from zero. With W = U·S·Vᵀ (svd.ts) and s the LoRA scale:
 *   B₀ = U_r·√(S_r / s)   (O, r)        A₀ = √(S_r / s)·V_rᵀ   (r, I)        so s·B₀·A₀ = U_r·S_r·V_rᵀ
 * PiSSA then trains B, A from (B₀, A₀) on the residual base W − s·B₀·A₀, so the function at step 0 is
 * W's and the first updates move the principal subspace, where LoRA's B = 0 start moves a random one.
 *
 * keel never rewrites a base weight for an added method ("disabled = base exactly"), so the residual
 * lives in the hook instead: W' = W + (s·B·A − s·B₀·A₀) (lora.ts `loraDelta`), with frozen copies of
 * B₀, A₀ (2× the trainable bytes). The bracket is computed by the same kernels on bitwise-equal
 * factors at step 0, so it is exactly 0 there and the model is the base model exactly, not merely up
 * to rounding. Merging writes W + s·B·A − s·B₀·A₀, which is PEFT's residual base plus s·B·A.
 *
 * The SVD needs W on the CPU and apply() is synchronous, so `startPissaInit` reads the weights back
 * and writes B = B₀, A = A₀ when they arrive. Until then all four are 0: the bracket is exactly 0 all
 * along, so forwards are the base function either way; only optimizer steps must wait (the handle's
 * trainStep awaits `ready`, and the instance's step hook refuses to run before it settles).
 *
 * Files. PEFT's own PiSSA saves adapters that expect its residual base; PEFT turns them into plain
 * LoRA with save_pretrained(path_initial_model_for_weight_conversion=…), using
 *   s·B·A − s·B₀·A₀ = s·[B | −B₀]·[A ; A₀]
 * a LoRA of rank 2r on the ORIGINAL base, written with r → 2r and lora_alpha → 2·alpha (rsLoRA:
 * √2·alpha) so the scale s is unchanged. keel saves exactly that: lora_A = [A ; A₀] (2r, I) and
 * lora_B = [B | −B₀] (O, 2r), init_lora_weights: true. PEFT loads the files as an ordinary LoRA on the
 * untouched base; keel reads its own `config` (init 'pissa', rank r) and splits them back (negation
 * is exact, so load → save round-trips bit for bit).
 *
 * Dimension legend: O output features, I input features, r rank, s scale.
 * Non-goals: PiSSA's fast randomized SVD (niter) — exact Jacobi is cheap at keel's sizes; saving in
 * PEFT's residual-base layout (it would need the residual base model saved too).
 */
import type { Tensor } from '@keel/autograd';
import { topSingular } from './svd.js';

/** B₀ (O, r) and A₀ (r, I) of one weight W (O, I), row-major float32; s·B₀·A₀ = W's rank-r principal part. */
export function pissaFactors(w: ArrayLike<number>, outFeatures: number, inFeatures: number, r: number, scale: number): { a: Float32Array; b: Float32Array } {
  if (!(scale > 0)) throw new Error(`pissaFactors: scale must be > 0, got ${scale}`);
  const top = topSingular(w, outFeatures, inFeatures, r);
  const root = Array.from(top.s, (sv) => Math.sqrt(sv / scale)); // √(S_r / s)
  const a = Float32Array.from({ length: r * inFeatures }, (_, idx) => root[Math.floor(idx / inFeatures)]! * top.v[(idx % inFeatures) * r + Math.floor(idx / inFeatures)]!);
  const b = Float32Array.from({ length: outFeatures * r }, (_, idx) => top.u[idx]! * root[idx % r]!);
  return { a, b };
}

/** One adapted weight and the four tensors PiSSA initializes. */
export interface PissaTarget {
  path: string;
  weight: Tensor; // W (O, I)
  a: Tensor; // A (r, I)
  b: Tensor; // B (O, r)
  a0: Tensor; // A₀ (r, I), frozen
  b0: Tensor; // B₀ (O, r), frozen
}

/**
 * Reads every target's W back, and per target writes B = B₀ and A = A₀ from its SVD, unless `live()`
 * has turned false (state loaded, adapter merged or removed) by then. Resolves when done or dropped;
 * a read-back failure rejects only while the init is still wanted.
 */
export async function startPissaInit(targets: readonly PissaTarget[], r: number, scale: number, live: () => boolean): Promise<void> {
  let weights: (Float32Array | Int32Array)[];
  try {
    weights = await Promise.all(targets.map((t) => t.weight.toArray()));
  } catch (e) {
    if (!live()) return; // dropped anyway (e.g. the runtime was destroyed after a load)
    throw e;
  }
  targets.forEach((t, i) => {
    if (!live()) return;
    const [outFeatures, inFeatures] = t.weight.shape as [number, number];
    let factors: { a: Float32Array; b: Float32Array };
    try {
      factors = pissaFactors(weights[i]!, outFeatures, inFeatures, r, scale);
    } catch (e) {
      throw new Error(`PiSSA init of '${t.path}': ${(e as Error).message}`, { cause: e });
    }
    const { a, b } = factors;
    for (const [dst, data] of [[t.a, a], [t.a0, a], [t.b, b], [t.b0, b]] as const) dst.rt.write(dst.buffer, data);
  });
}

/** [top ; bottom]: two row-major (n, cols) blocks stacked into (2n, cols). */
export function stackRows(top: Float32Array, bottom: Float32Array): Float32Array {
  const out = new Float32Array(top.length + bottom.length);
  out.set(top);
  out.set(bottom, top.length);
  return out;
}

/** [left | −right]: two row-major (rows, n) blocks side by side into (rows, 2n), the right one negated. */
export function stackColsNegRight(left: Float32Array, right: Float32Array, rows: number): Float32Array {
  const n = left.length / rows;
  const out = new Float32Array(2 * left.length);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) {
      out[i * 2 * n + j] = left[i * n + j]!;
      out[i * 2 * n + n + j] = -right[i * n + j]!;
    }
  }
  return out;
}

/** Inverse of stackRows: (2n, cols) → [top, bottom]. */
export function splitRows(stacked: Float32Array): [Float32Array, Float32Array] {
  const half = stacked.length / 2;
  return [stacked.slice(0, half), stacked.slice(half)];
}

/** Inverse of stackColsNegRight: (rows, 2n) → [left, right] (the right block negated back). */
export function splitColsNegRight(stacked: Float32Array, rows: number): [Float32Array, Float32Array] {
  const n = stacked.length / rows / 2;
  const left = new Float32Array(rows * n);
  const right = new Float32Array(rows * n);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < n; j++) {
      left[i * n + j] = stacked[i * 2 * n + j]!;
      right[i * n + j] = -stacked[i * 2 * n + n + j]!;
    }
  }
  return [left, right];
}
