/**
 * Thin singular value decomposition of a small dense matrix, in float64 on the CPU, by one-sided
 * (Hestenes) Jacobi: PiSSA's initialization needs the top-r singular triplets of each adapted weight.
 *
 *   M = U·diag(S)·Vᵀ,   M (m, n),  U (m, k),  S (k,) descending ≥ 0,  V (n, k),  k = min(m, n)
 *
 * One-sided Jacobi works on the columns of a copy X of M (transposed first when it is wider than
 * tall, so the pairs run over the smaller side): for each column pair (p, q) a plane rotation makes
 * x_p ⊥ x_q, and the same rotation accumulates into V (X = M·V throughout). Sweeps repeat until no
 * pair is further from orthogonal than 1e-15 relative; then S_j = ‖x_j‖ and u_j = x_j / S_j.
 * Convergence is quadratic once the columns are nearly orthogonal, and the singular values come out
 * to high relative accuracy (Demmel & Veselić 1992), unlike an eigen-solve of the Gram matrix MᵀM,
 * which squares the condition number.
 *
 * Determinism: the sweep order is fixed and ties in S keep column order, so a matrix always gets
 * the same factors; each pair (u_j, v_j) is sign-fixed so u_j's largest-magnitude entry is positive.
 * Dimension legend: m rows, n columns, k = min(m, n), r how many leading triplets are kept.
 * Non-goals: large matrices (O(k²·max(m, n)) per sweep: keel's weights are a few hundred wide),
 * complex values, the full (square) U or V.
 */

/** Row-major float64 factors: u (m, k) , s (k,), v (n, k). */
export interface Svd {
  rows: number;
  cols: number;
  /** min(rows, cols) (or r for `topSingular`). */
  rank: number;
  u: Float64Array;
  s: Float64Array;
  v: Float64Array;
}

const MAX_SWEEPS = 80;
const TOL = 1e-15;

function checkMatrix(what: string, a: ArrayLike<number>, rows: number, cols: number): void {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 1 || cols < 1) throw new Error(`${what}: rows and cols must be positive integers, got ${rows}×${cols}`);
  if (a.length !== rows * cols) throw new Error(`${what}: expected ${rows}×${cols} = ${rows * cols} values, got ${a.length}`);
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i]!)) throw new Error(`${what}: value [${Math.floor(i / cols)}, ${i % cols}] is ${a[i]}; the matrix must be finite`);
}

/** Thin SVD of the row-major matrix `a` (rows, cols); see the file comment. */
export function svd(a: ArrayLike<number>, rows: number, cols: number): Svd {
  checkMatrix('svd', a, rows, cols);
  const tall = rows >= cols;
  // work on T = M (tall) or Mᵀ (wide): T (m, n) with m ≥ n; columns stored contiguously
  const m = tall ? rows : cols;
  const n = tall ? cols : rows;
  const x = Array.from({ length: n }, (_, j) => Float64Array.from({ length: m }, (_, i) => (tall ? a[i * cols + j]! : a[j * cols + i]!)));
  const w = Array.from({ length: n }, (_, j) => Float64Array.from({ length: n }, (_, i) => (i === j ? 1 : 0)));
  let converged = false;
  for (let sweep = 0; sweep < MAX_SWEEPS && !converged; sweep++) {
    converged = true;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const xp = x[p]!;
        const xq = x[q]!;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          alpha += xp[i]! * xp[i]!;
          beta += xq[i]! * xq[i]!;
          gamma += xp[i]! * xq[i]!;
        }
        if (gamma === 0 || Math.abs(gamma) <= TOL * Math.sqrt(alpha * beta)) continue;
        converged = false;
        // the rotation angle θ with tan 2θ = 2γ / (β − α); t = tan θ, the smaller root
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (const cols2 of [x, w]) {
          const cp = cols2[p]!;
          const cq = cols2[q]!;
          for (let i = 0; i < cp.length; i++) {
            const vp = cp[i]!;
            const vq = cq[i]!;
            cp[i] = c * vp - s * vq;
            cq[i] = s * vp + c * vq;
          }
        }
      }
    }
  }
  if (!converged) throw new Error(`svd: one-sided Jacobi did not converge in ${MAX_SWEEPS} sweeps (${rows}×${cols})`);
  const norms = x.map((col) => Math.sqrt(col.reduce((acc, v) => acc + v * v, 0)));
  const order = norms.map((_, j) => j).sort((i, j) => norms[j]! - norms[i]! || i - j);
  const k = n;
  // T = X·Wᵀ = Ũ·S·Wᵀ: for M = T the left factor is Ũ, for M = Tᵀ the roles swap
  const out: Svd = { rows, cols, rank: k, u: new Float64Array(rows * k), s: new Float64Array(k), v: new Float64Array(cols * k) };
  order.forEach((j, slot) => {
    const sigma = norms[j]!;
    const left = x[j]!.map((v) => (sigma > 0 ? v / sigma : 0)); // (m,)
    const right = w[j]!; // (n,)
    // sign: the largest-magnitude entry of M's left vector is positive
    const uVec = tall ? left : right;
    let big = 0;
    for (let i = 1; i < uVec.length; i++) if (Math.abs(uVec[i]!) > Math.abs(uVec[big]!)) big = i;
    const sign = uVec[big]! < 0 ? -1 : 1;
    out.s[slot] = sigma;
    const [uCol, vCol] = tall ? [left, right] : [right, left];
    for (let i = 0; i < rows; i++) out.u[i * k + slot] = sign * uCol[i]!;
    for (let i = 0; i < cols; i++) out.v[i * k + slot] = sign * vCol[i]!;
  });
  return out;
}

/** The leading `r` singular triplets of `a` (rows, cols): u (rows, r), s (r,), v (cols, r). */
export function topSingular(a: ArrayLike<number>, rows: number, cols: number, r: number): Svd {
  const k = Math.min(rows, cols);
  if (!Number.isInteger(r) || r < 1 || r > k) throw new Error(`topSingular: r must be an integer in [1, ${k}] for a ${rows}×${cols} matrix, got ${r}`);
  const full = svd(a, rows, cols);
  const keep = (src: Float64Array, n: number) => Float64Array.from({ length: n * r }, (_, idx) => src[Math.floor(idx / r) * k + (idx % r)]!);
  return { rows, cols, rank: r, u: keep(full.u, rows), s: full.s.slice(0, r), v: keep(full.v, cols) };
}
