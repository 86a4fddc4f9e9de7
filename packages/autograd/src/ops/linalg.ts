/**
 * Matrix products. `matmul(a, b)` multiplies the last two axes: a (…, M, K) · b (…, K, N) → (…, M, N),
 * where a 2-D operand is shared across the other's batch (weights), and both 3-D operands must agree
 * on the batch (B). `transA`/`transB` read an operand as stored transposed.
 */
import { matmul as matmulKernel, matmulBackward, matmulDims } from '@keel/kernels';
import { record } from '../tape.js';
import { Tensor } from '../tensor.js';
import { assertF32 } from './elementwise.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

function flatten3(t: Tensor): readonly number[] {
  if (t.rank < 2) throw new Error(`matmul: operands need rank ≥ 2, got [${t.shape}]`);
  const lead = t.shape.slice(0, -2).reduce((a, b) => a * b, 1);
  return [lead, t.shape[t.rank - 2]!, t.shape[t.rank - 1]!];
}

export function matmulDimsOf(a: Tensor, b: Tensor, o: MatmulOptions) {
  const a3 = flatten3(a);
  const b3 = flatten3(b);
  const dims = matmulDims(a.rank === 2 ? a3.slice(1) : a3, b.rank === 2 ? b3.slice(1) : b3, o);
  if (a.rank > 2 && b.rank > 2 && a.shape.slice(0, -2).join() !== b.shape.slice(0, -2).join()) {
    throw new Error(`matmul: batch dimensions differ (A is [${a.shape}], B is [${b.shape}])`);
  }
  const lead = (a.rank >= b.rank ? a : b).shape.slice(0, -2);
  return { dims, outShape: [...lead, dims.m, dims.n] };
}

export function matmul(a: Tensor, b: Tensor, o: MatmulOptions = {}): Tensor {
  assertF32('matmul', a, b);
  const { dims, outShape } = matmulDimsOf(a, b, o);
  const buf = matmulKernel(a.rt, a.buffer, b.buffer, { ...dims, transA: !!o.transA, transB: !!o.transB });
  return record(Tensor.fromBuffer(a.rt, buf, outShape), 'matmul', [a, b], { transA: !!o.transA, transB: !!o.transB });
}

/** Gradients of matmul (used by the backward rule). */
export function matmulGrads(dy: Tensor, a: Tensor, b: Tensor, o: { transA: boolean; transB: boolean }): [Tensor | null, Tensor | null] {
  const { dims } = matmulDimsOf(a, b, o);
  const g = matmulBackward(a.rt, a.buffer, b.buffer, dy.buffer, {
    ...dims,
    transA: o.transA,
    transB: o.transB,
    needA: a.requiresGrad,
    needB: b.requiresGrad,
  });
  return [
    g.dA ? Tensor.fromBuffer(a.rt, g.dA, a.shape) : null,
    g.dB ? Tensor.fromBuffer(a.rt, g.dB, b.shape) : null,
  ];
}
