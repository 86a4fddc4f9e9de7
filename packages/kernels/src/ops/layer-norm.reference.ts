/**
 * Float64 CPU references for LayerNorm and RMSNorm (forward and backward) over (N, C) row-major data,
 * shared by the tests and bench/norm.ts. `weight`/`bias` null means 1 and 0.
 */

export interface NormRef {
  y: Float64Array;
  mean: Float64Array;
  rstd: Float64Array;
}

export function layerNormRef(
  x: ArrayLike<number>,
  weight: ArrayLike<number> | null,
  bias: ArrayLike<number> | null,
  n: number,
  c: number,
  eps: number,
): NormRef {
  const y = new Float64Array(n * c);
  const mean = new Float64Array(n);
  const rstd = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let s = 0;
    for (let j = 0; j < c; j++) s += x[r * c + j]!;
    const mu = s / c;
    let q = 0;
    for (let j = 0; j < c; j++) q += (x[r * c + j]! - mu) ** 2;
    const rs = 1 / Math.sqrt(q / c + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let j = 0; j < c; j++) {
      y[r * c + j] = (x[r * c + j]! - mu) * rs * (weight ? weight[j]! : 1) + (bias ? bias[j]! : 0);
    }
  }
  return { y, mean, rstd };
}

export function rmsNormRef(x: ArrayLike<number>, weight: ArrayLike<number> | null, n: number, c: number, eps: number): NormRef {
  const y = new Float64Array(n * c);
  const rstd = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    let q = 0;
    for (let j = 0; j < c; j++) q += x[r * c + j]! ** 2;
    const rs = 1 / Math.sqrt(q / c + eps);
    rstd[r] = rs;
    for (let j = 0; j < c; j++) y[r * c + j] = x[r * c + j]! * rs * (weight ? weight[j]! : 1);
  }
  return { y, mean: new Float64Array(n), rstd };
}

export interface NormGradRef {
  dx: Float64Array;
  dweight: Float64Array;
  dbias: Float64Array;
}

/** Gradients of layerNormRef (rms = false) or rmsNormRef (rms = true), recomputing the statistics. */
export function normBackwardRef(
  dy: ArrayLike<number>,
  x: ArrayLike<number>,
  weight: ArrayLike<number> | null,
  n: number,
  c: number,
  eps: number,
  rms: boolean,
): NormGradRef {
  const st = rms ? rmsNormRef(x, null, n, c, eps) : layerNormRef(x, null, null, n, c, eps);
  const dx = new Float64Array(n * c);
  const dweight = new Float64Array(c);
  const dbias = new Float64Array(c);
  for (let r = 0; r < n; r++) {
    const mu = st.mean[r]!;
    const rs = st.rstd[r]!;
    let sg = 0;
    let sgx = 0;
    for (let j = 0; j < c; j++) {
      const g = dy[r * c + j]! * (weight ? weight[j]! : 1);
      const xh = (x[r * c + j]! - mu) * rs;
      sg += g;
      sgx += g * xh;
      dweight[j] = dweight[j]! + dy[r * c + j]! * xh;
      dbias[j] = dbias[j]! + dy[r * c + j]!;
    }
    for (let j = 0; j < c; j++) {
      const g = dy[r * c + j]! * (weight ? weight[j]! : 1);
      const xh = (x[r * c + j]! - mu) * rs;
      dx[r * c + j] = rs * (g - (rms ? 0 : sg / c) - (xh * sgx) / c);
    }
  }
  return { dx, dweight, dbias };
}
