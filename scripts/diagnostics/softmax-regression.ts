/**
 * The linear probe shared by the diagnostics: softmax regression over rows of features, fitted by
 * full-batch Adam in float64. `x` holds `rows` rows of `W` features; a fitted model is K × (W + 1)
 * weights (the last of each row the bias).
 */
export interface ProbeRows {
  x: Float32Array;
  W: number;
  rows: number;
}

export function probeLogits(w: Float64Array, f: ProbeRows, r: number, K: number): Float64Array {
  const z = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    let s = w[k * (f.W + 1) + f.W]!;
    for (let d = 0; d < f.W; d++) s += w[k * (f.W + 1) + d]! * f.x[r * f.W + d]!;
    z[k] = s;
  }
  return z;
}

/** The class a fitted probe picks for row r. */
export function probePredict(w: Float64Array, f: ProbeRows, r: number, K: number): number {
  const z = probeLogits(w, f, r, K);
  return z.indexOf(Math.max(...z));
}

/** Fits labels y (one per row, in [0, K)) by `steps` of full-batch Adam at `lr`. */
export function fitProbe(f: ProbeRows, y: readonly number[], K: number, { steps, lr }: { steps: number; lr: number }): Float64Array {
  const w = new Float64Array(K * (f.W + 1));
  const m = new Float64Array(w.length);
  const v = new Float64Array(w.length);
  for (let it = 1; it <= steps; it++) {
    const g = new Float64Array(w.length);
    for (let r = 0; r < f.rows; r++) {
      const z = probeLogits(w, f, r, K);
      const top = Math.max(...z);
      let sum = 0;
      for (let k = 0; k < K; k++) sum += (z[k] = Math.exp(z[k]! - top));
      for (let k = 0; k < K; k++) {
        const e = z[k]! / sum - (y[r] === k ? 1 : 0);
        for (let d = 0; d < f.W; d++) g[k * (f.W + 1) + d]! += e * f.x[r * f.W + d]!;
        g[k * (f.W + 1) + f.W]! += e;
      }
    }
    for (let i = 0; i < w.length; i++) {
      const gi = g[i]! / f.rows;
      m[i] = 0.9 * m[i]! + 0.1 * gi;
      v[i] = 0.999 * v[i]! + 0.001 * gi * gi;
      w[i]! -= (lr * (m[i]! / (1 - 0.9 ** it))) / (Math.sqrt(v[i]! / (1 - 0.999 ** it)) + 1e-8);
    }
  }
  return w;
}
