/**
 * gradcheck: compares autograd's gradients with central finite differences computed on the GPU.
 *
 * For f = fn(...inputs) of any shape, the check contracts the output with a fixed random projection
 * r (same shape, seeded): L = Σ r ⊙ f. Autograd gives ∂L/∂x = Jᵀr via `backward(f, r)`; the finite
 * difference perturbs each element of each input that requires gradients by ±eps in place and
 * evaluates fn under noGrad: (L(x + h) − L(x − h)) / (x₊ − x₋), with L summed in float64 on the CPU
 * and x₊, x₋ the f32-rounded perturbed values. Costs 2 forward evaluations (and readbacks) per
 * checked element: meant for small tensors.
 *
 * Tolerances are for f32 forwards: the difference quotient carries roundoff ≈ ulp(L)/eps plus an
 * O(eps²) truncation term, so the default eps = 1e-2 with atol = rtol = 1e-2 suits functions whose
 * values and gradients are O(1). An element fails when |autograd − fd| > atol + rtol·max(|autograd|,
 * |fd|) or either is NaN; the error names the input and its worst element.
 */
import { backward, zeroGrad } from './backward.js';
import { seededRandom, tensor } from './creation.js';
import { tidy } from './scope.js';
import { noGrad } from './tape.js';
import type { Tensor } from './tensor.js';

export interface GradcheckOptions {
  /** Perturbation (default 1e-2). */
  eps?: number;
  /** Absolute tolerance (default 1e-2). */
  atol?: number;
  /** Relative tolerance (default 1e-2). */
  rtol?: number;
  /** Seed of the output projection r (default 1). */
  seed?: number;
  /** Names of the inputs for error messages (default `input i`). */
  names?: readonly string[];
}

export interface GradcheckResult {
  /** Per checked input: the largest |autograd − fd| and the number of elements checked. */
  inputs: { name: string; maxAbsError: number; elements: number }[];
}

function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    idx[a] = i % shape[a]!;
    i = Math.floor(i / shape[a]!);
  }
  return idx;
}

/**
 * Checks the gradients of `fn` for every input that requires them (those must be leaves). Throws an
 * Error naming the input and its worst element on a mismatch; returns the errors seen otherwise.
 * Leaves' `.grad` is left as it was.
 */
export async function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  options: GradcheckOptions = {},
): Promise<GradcheckResult> {
  const { eps = 1e-2, atol = 1e-2, rtol = 1e-2, seed = 1 } = options;
  const name = (i: number) => `${options.names?.[i] ?? `input ${i}`} [${inputs[i]!.shape}]`;
  const checked = inputs.map((t, i) => ({ t, i })).filter(({ t }) => t.requiresGrad);
  if (checked.length === 0) throw new Error('gradcheck: no input requires gradients');
  for (const { t, i } of checked) {
    if (t.node) throw new Error(`gradcheck: ${name(i)} requires gradients but is not a leaf`);
    if (t.dtype !== 'f32') throw new Error(`gradcheck: ${name(i)} is ${t.dtype}; only f32 inputs can be checked`);
  }
  const rt = inputs[0]!.rt;

  // Projection r and the analytic gradients Jᵀr.
  const outShape = noGrad(() => tidy(() => [...fn(...inputs).shape]));
  const rand = seededRandom(seed);
  const rValues = Float64Array.from({ length: outShape.reduce((a, b) => a * b, 1) }, () => 2 * rand() - 1);
  const saved = checked.map(({ t }) => t.grad);
  for (const { t } of checked) t.grad = null;
  const analytic: Float32Array[] = [];
  try {
    const r = tensor(rt, Float32Array.from(rValues), outShape);
    tidy(() => backward(fn(...inputs), r));
    r.dispose();
    for (const { t } of checked) {
      analytic.push(t.grad ? Float32Array.from(await t.grad.toArray()) : new Float32Array(t.size));
    }
  } finally {
    zeroGrad(checked.map(({ t }) => t));
    checked.forEach(({ t }, k) => (t.grad = saved[k]!));
  }

  const evalL = async (): Promise<number> => {
    const out = tidy(() => noGrad(() => fn(...inputs)));
    const v = await out.toArray();
    out.dispose();
    let s = 0;
    for (let j = 0; j < v.length; j++) s += rValues[j]! * v[j]!;
    return s;
  };

  const result: GradcheckResult = { inputs: [] };
  for (const [k, { t, i }] of checked.entries()) {
    const x = Float32Array.from(await t.toArray());
    const grad = analytic[k]!;
    let worst = { j: -1, excess: -Infinity, err: 0, fd: 0, tol: 0 };
    let maxAbs = 0;
    for (let j = 0; j < x.length; j++) {
      const xp = Math.fround(x[j]! + eps);
      const xm = Math.fround(x[j]! - eps);
      rt.write(t.buffer, new Float32Array([xp]), j * 4);
      const lp = await evalL();
      rt.write(t.buffer, new Float32Array([xm]), j * 4);
      const lm = await evalL();
      rt.write(t.buffer, new Float32Array([x[j]!]), j * 4);
      const fd = (lp - lm) / (xp - xm);
      const a = grad[j]!;
      const err = Math.abs(a - fd);
      const tol = atol + rtol * Math.max(Math.abs(a), Math.abs(fd));
      const excess = Number.isNaN(err) ? Infinity : err - tol;
      if (!Number.isNaN(err)) maxAbs = Math.max(maxAbs, err);
      if (excess > worst.excess) worst = { j, excess, err, fd, tol };
    }
    if (worst.excess > 0) {
      const at = unravel(worst.j, t.shape);
      throw new Error(
        `gradcheck: gradient of ${name(i)} differs from finite differences; worst element [${at}] (flat ${worst.j}): ` +
          `autograd ${grad[worst.j]}, finite difference ${worst.fd} (|diff| ${worst.err} > tolerance ${worst.tol}; eps ${eps})`,
      );
    }
    result.inputs.push({ name: name(i), maxAbsError: maxAbs, elements: x.length });
  }
  return result;
}
