/**
 * @keel/autograd — GPU tensors, a tape with typed backward rules, modules and optimizers.
 * Knows nothing of models.
 */
export { Tensor, Storage, numel } from './tensor.js';
export type { DType } from './tensor.js';
export { tidy, keep } from './scope.js';
export { noGrad, isGradEnabled } from './tape.js';
export { setCheckFinite } from './check-finite.js';
export type { Node } from './tape.js';
export { backward, zeroGrad } from './backward.js';
export { full, zeros, ones, tensor, arange, randn, rand, seededRandom, SeededStream } from './creation.js';
export type { CreateOptions } from './creation.js';
export * from './ops/elementwise.js';
export { matmul } from './ops/linalg.js';
export type { MatmulOptions } from './ops/linalg.js';
export { sum, mean, max, min, argmax } from './ops/reduce.js';
export type { ReduceAxes } from './ops/reduce.js';
export { reshape, expand } from './ops/shape.js';
export type { OpName, OpCtx, BackwardRule } from './ops/registry.js';
export { softmax, logSoftmax, crossEntropy, layerNorm, rmsNorm, embedding, linear } from './ops/nn.js';
export type { SoftmaxOptions, CrossEntropyOptions, NormOptions } from './ops/nn.js';
export { rope, attention } from './ops/attention.js';
export type { RopeOptions, AttentionOpOptions } from './ops/attention.js';
export { permute, transpose, slice, narrow, concat, indexSelect, where } from './ops/layout.js';
export { gradcheck } from './gradcheck.js';
export type { GradcheckOptions, GradcheckResult } from './gradcheck.js';
export type { RuleTable } from './ops/registry.js';
export { Module, Parameter, globToRegExp, matchesName } from './module.js';
export type { NamePattern, LoadStateDictOptions, LoadStateDictResult, StateDictValue, StateDictInput } from './module.js';
export { Linear, Embedding, LayerNorm, RMSNorm, ModuleList, Activation, Sequential, UnaryModule, mlp } from './layers.js';
export type { LinearOptions, LinearHook, ActivationName, MlpOptions } from './layers.js';
export { Optimizer, groupParameters } from './optim/optimizer.js';
export type { ParamGroup, ParamsInput, OptimizerOptions, Group, OptimizerState, GroupRule } from './optim/optimizer.js';
export { SGD } from './optim/sgd.js';
export type { SgdOptimizerOptions } from './optim/sgd.js';
export { AdamW, MaskedAdamW } from './optim/adamw.js';
export type { AdamWOptimizerOptions, OptimizerMaskMode, GradientArenas, GradientHook } from './optim/adamw.js';
export { constantSchedule, linearWarmup, cosineSchedule, linearSchedule } from './optim/schedule.js';
export type { Schedule, DecayOptions } from './optim/schedule.js';
export { cast } from './ops/cast.js';
export { dtypeBytes, halfToFloat } from './tensor.js';
