/**
 * @keel/kernels — the GPU runtime and keel's hand-written WGSL kernels.
 */
export { Runtime, getRuntime, WANTED_FEATURES } from './runtime/runtime.js';
export type { DeviceInfo, RuntimeOptions, RuntimeStats, BufferBinding, DispatchArgs, KeelFeature } from './runtime/runtime.js';
export { GpuBuffer, bucketSize } from './runtime/buffer-pool.js';
export type { PoolStats } from './runtime/buffer-pool.js';
export type { KernelTime } from './runtime/profiler.js';
export { dispatchSubgroupMatmul, subgroupMatmulFits, subgroupMatmulWidth, SUBGROUP_MATMUL_TM } from './ops/matmul-subgroup.js';
export type { SubgroupMatmulParams, SubgroupMatmulDispatch, SubgroupMatmulUniform } from './ops/matmul-subgroup.js';
export type { MatmulPath } from './ops/matmul.js';
export { defineKernel, grid1d, packUniforms, uniformBytes } from './runtime/kernel.js';
export type { Kernel, KernelSpec, BindingSpec, UniformSpec, Workgroups, ScalarType, StorageAccess } from './runtime/kernel.js';
export { KernelError, DeviceLostError, LimitError, NoAdapterError } from './runtime/errors.js';
export { getGpu } from './runtime/gpu.js';
export { axpy, axpyKernel } from './ops/axpy.js';
export {
  stridedCopy,
  fill,
  permute,
  transpose,
  inversePermutation,
  slice,
  sliceBackward,
  concat,
  concatBackward,
  pad,
  padBackward,
  indexSelect,
  indexSelectBackward,
  contiguousStrides,
} from './ops/layout.js';
export type { Shape, SliceSpec } from './ops/layout.js';
export { SEGMENT_ALIGN, segmentLayout, createSegmentTable, releaseSegments } from './ops/segments.js';
export type { SegmentLayout, SegmentTable } from './ops/segments.js';
export { maskedAdamW, adamwKernels, optimizerControl } from './ops/adamw.js';
export type { AdamWMask, AdamWMaskMode, AdamWArenas, AdamWOptions } from './ops/adamw.js';
export { gradNormSquared, GRAD_NORM_RECORD } from './ops/grad-norm.js';
export type { GradNormOptions } from './ops/grad-norm.js';
export { sgdMomentum } from './ops/optim-sgd.js';
export type { SgdArenas, SgdOptions } from './ops/optim-sgd.js';
export { topkThreshold, topkCounts } from './ops/topk.js';
export type { TopkAmount, TopkOptions, TopkResult } from './ops/topk.js';
export { layerNormForward, layerNormBackward } from './ops/layer-norm.js';
export type { LayerNormForwardOptions, LayerNormForwardResult, LayerNormBackwardOptions, LayerNormBackwardResult } from './ops/layer-norm.js';
export { rmsNormForward, rmsNormBackward } from './ops/rms-norm.js';
export type { RmsNormForwardOptions, RmsNormForwardResult, RmsNormBackwardOptions, RmsNormBackwardResult } from './ops/rms-norm.js';
export { embeddingForward, embeddingBackward } from './ops/embedding.js';
export type { EmbeddingForwardOptions, EmbeddingBackwardOptions } from './ops/embedding.js';
export { ropeForward, ropeBackward } from './ops/rope.js';
export type { RopeOptions, RopeLayout } from './ops/rope.js';
export { spiderInit, spiderStep, importanceScores } from './ops/importance.js';
export type { ImportanceMode, SpiderInitOptions, SpiderStepOptions, ImportanceScoresOptions } from './ops/importance.js';
export { segmentStats } from './ops/importance-stats.js';
export type { SegmentStatsOptions } from './ops/importance-stats.js';
export { unaryForward, elementwiseCopy, castF32ToF16, castF16ToF32, broadcastShapes, UNARY_OPS, unaryNeedsScalar } from './ops/elementwise.js';
export type { UnaryOp, UnaryOptions, CastDirection } from './ops/elementwise.js';
export { binaryForward, whereForward, biasGeluForward, BINARY_OPS } from './ops/elementwise-binary.js';
export type { BinaryOp, BinaryOptions, WhereOptions, BiasGeluOptions, GeluApproximation } from './ops/elementwise-binary.js';
export { unaryBackward, reduceToShape, binaryBackward } from './ops/elementwise-backward.js';
export type { DiffBinaryOp } from './ops/elementwise-backward.js';
export { reduce, reduceSum, reduceMean, reduceMax, reduceMin, reduceSumSquares, reduceArgmax, reduceOutputShape, REDUCE_OPS } from './ops/reduce.js';
export type { ReduceOp, ReduceOptions } from './ops/reduce.js';
export { softmaxForward, softmaxBackward, logSoftmaxForward, logSoftmaxBackward } from './ops/softmax.js';
export type { SoftmaxKind, SoftmaxOptions } from './ops/softmax.js';
export { crossEntropyForward, crossEntropyBackward } from './ops/cross-entropy.js';
export type { CrossEntropyOptions, CrossEntropySaved } from './ops/cross-entropy.js';
export { attentionForward, attentionShape, ATTENTION_MAX_HEAD_DIM } from './ops/attention.js';
export type { AttentionOptions, AttentionShape } from './ops/attention.js';
export { attentionBackward } from './ops/attention-backward.js';
export { matmul, matmulBackward, matmulDims, MATMUL_DEFAULT_TILE } from './ops/matmul.js';
export type { MatmulOptions, MatmulTile, MatmulBiasMode, MatmulDims, MatmulBackwardOptions, MatmulGrads } from './ops/matmul.js';
