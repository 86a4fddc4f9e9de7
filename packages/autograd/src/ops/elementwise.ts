/**
 * Elementwise tensor ops (unary, scalar, binary with broadcasting, comparisons) over the kernels
 * of @keel/kernels. Comparisons and `where` conditions are not differentiable and record nothing.
 */
import {
  binaryForward,
  broadcastShapes,
  unaryForward,
  type BinaryOp,
  type DiffBinaryOp,
  type UnaryOp,
} from '@keel/kernels';
import { record, untracked } from '../tape.js';
import { Tensor, numel } from '../tensor.js';

export function assertF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) {
    if (t.dtype !== 'f32') {
      const hint = t.dtype === 'f16' ? "; f16 is a storage type: cast(x, 'f32') first" : '';
      throw new Error(`${op}: expected an f32 tensor, got ${t.dtype} [${t.shape}]${hint}`);
    }
    if (t.isDisposed) throw new Error(`${op}: tensor #${t.id} [${t.shape}] was disposed`);
  }
}

export function unary(op: UnaryOp, x: Tensor, scalar?: number): Tensor {
  assertF32(op, x);
  const out = Tensor.fromBuffer(x.rt, unaryForward(x.rt, op, x.buffer, { n: x.size, ...(scalar !== undefined ? { scalar } : {}) }), x.shape);
  return record(out, 'unary', [x], scalar !== undefined ? { op, scalar } : { op });
}

function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  assertF32(op, a, b);
  const shape = broadcastShapes(`binary ${op}`, a.shape, b.shape);
  const out = Tensor.fromBuffer(a.rt, binaryForward(a.rt, op, a.buffer, b.buffer, { aShape: a.shape, bShape: b.shape }), shape);
  if (op === 'eq' || op === 'ne' || op === 'lt' || op === 'le' || op === 'gt' || op === 'ge') return untracked(out, op, [a, b]);
  return record(out, 'binary', [a, b], { op: op as DiffBinaryOp });
}

type Operand = Tensor | number;
function scalarOr(a: Tensor, b: Operand, op: BinaryOp, scalarOp: UnaryOp): Tensor {
  return typeof b === 'number' ? unary(scalarOp, a, b) : binary(op, a, b);
}

export const add = (a: Tensor, b: Operand): Tensor => scalarOr(a, b, 'add', 'add_scalar');
export const sub = (a: Tensor, b: Operand): Tensor => scalarOr(a, b, 'sub', 'sub_scalar');
export const mul = (a: Tensor, b: Operand): Tensor => scalarOr(a, b, 'mul', 'mul_scalar');
export const div = (a: Tensor, b: Operand): Tensor => scalarOr(a, b, 'div', 'div_scalar');
export const pow = (a: Tensor, b: Operand): Tensor => scalarOr(a, b, 'pow', 'pow_scalar');
export const maximum = (a: Tensor, b: Tensor): Tensor => binary('maximum', a, b);
export const minimum = (a: Tensor, b: Tensor): Tensor => binary('minimum', a, b);

export const neg = (x: Tensor): Tensor => unary('neg', x);
export const exp = (x: Tensor): Tensor => unary('exp', x);
export const log = (x: Tensor): Tensor => unary('log', x);
export const sqrt = (x: Tensor): Tensor => unary('sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unary('rsqrt', x);
export const abs = (x: Tensor): Tensor => unary('abs', x);
export const relu = (x: Tensor): Tensor => unary('relu', x);
export const gelu = (x: Tensor, approximate: 'tanh' | 'erf' = 'tanh'): Tensor => unary(approximate === 'tanh' ? 'gelu' : 'gelu_erf', x);
export const silu = (x: Tensor): Tensor => unary('silu', x);
export const sigmoid = (x: Tensor): Tensor => unary('sigmoid', x);
export const tanh = (x: Tensor): Tensor => unary('tanh', x);

/** 1.0 where the comparison holds, else 0.0 (not differentiable). */
export const eq = (a: Tensor, b: Tensor): Tensor => binary('eq', a, b);
export const lt = (a: Tensor, b: Tensor): Tensor => binary('lt', a, b);
export const gt = (a: Tensor, b: Tensor): Tensor => binary('gt', a, b);

export { numel };
