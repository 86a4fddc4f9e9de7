/**
 * The backward rules, one per op in the registry. The table's type makes a missing rule a compile
 * error. Rules run under noGrad (no second-order gradients) and return one gradient per input,
 * shaped like that input (broadcasts are summed back here, in one place: sumToShape).
 */
import { binaryBackward, unaryBackward } from '@keel/kernels';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';
import { attentionRules } from './attention.js';
import { mul } from './elementwise.js';
import { layoutRules } from './layout.js';
import { matmulGrads } from './linalg.js';
import { nnRules } from './nn.js';
import type { BackwardRule, OpName, RuleTable } from './registry.js';
import { expand, reshape, sumToShape } from './shape.js';

type CoreOps = 'unary' | 'binary' | 'matmul' | 'reduce' | 'reshape' | 'expand';

const coreRules: RuleTable<CoreOps> = {
  unary(dy, ctx, [x]) {
    const o = ctx.scalar !== undefined ? { n: x!.size, scalar: ctx.scalar } : { n: x!.size };
    return [Tensor.fromBuffer(dy.rt, unaryBackward(dy.rt, ctx.op, x!.buffer, dy.buffer, o), x!.shape)];
  },
  binary(dy, ctx, [a, b]) {
    const g = binaryBackward(dy.rt, ctx.op, a!.buffer, b!.buffer, dy.buffer, { aShape: a!.shape, bShape: b!.shape });
    return [Tensor.fromBuffer(dy.rt, g.da, a!.shape), Tensor.fromBuffer(dy.rt, g.db, b!.shape)];
  },
  matmul(dy, ctx, [a, b]) {
    return matmulGrads(dy, a!, b!, ctx);
  },
  reduce(dy, ctx) {
    const g = expand(reshape(dy, ctx.keptShape), ctx.inShape);
    return [ctx.op === 'mean' ? mul(g, 1 / ctx.count) : g];
  },
  reshape(dy, ctx) {
    return [reshape(dy, ctx.inShape)];
  },
  expand(dy, ctx) {
    return [sumToShape(dy, ctx.inShape)];
  },
};

/** The full table: every op family's rules (a missing one fails to type-check here). */
export const backwardRules: { readonly [K in OpName]: BackwardRule<K> } = {
  ...coreRules,
  ...nnRules,
  ...attentionRules,
  ...layoutRules,
  cast(dy, ctx) {
    return [cast(dy, ctx.from)];
  },
};
