/**
 * @keel/tuning — tuning strategies, the specialization-vs-forgetting evaluation, and the `keel` CLI.
 */
export { formatInfo } from './cli/info.js';
export { runSmoke } from './cli/smoke.js';
export { applyTuning, loadTuning, loadTuningFromFiles, parseStrategyConfig } from './strategies/apply.js';
export type { TuningHandle, TuningConfigInput, TuningOptimizerOptions } from './strategies/apply.js';
export { registerStrategy, getStrategy, listStrategies } from './strategies/registry.js';
export { registerBuiltinStrategies, BUILTIN_STRATEGIES } from './strategies/builtin.js';
export type { Paradigm, StrategyContext, StrategyDefinition, StrategyInstance, TensorState, PeftLayout } from './strategies/strategy.js';
export { selectLinears, selectParameters, targetPatterns, lastDecoderLayers, NORM_TARGETS } from './strategies/targets.js';
export { encodeAdapter, decodeAdapterState, readAdapterConfig, ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE } from './strategies/adapter-files.js';
export type { AdapterFiles, DecodedAdapter, EncodeAdapterOptions } from './strategies/adapter-files.js';
export { fullStrategy, fullConfigSchema } from './strategies/full.js';
export type { FullConfig } from './strategies/full.js';
export { bitfitStrategy, bitfitConfigSchema } from './strategies/bitfit.js';
export type { BitfitConfig } from './strategies/bitfit.js';
export { loraStrategy, loraConfigSchema, loraWeight, loraScale } from './strategies/lora.js';
export type { LoraConfig } from './strategies/lora.js';
export { evaluateTargetUpstream, harmonicMean, protocolScores } from './protocol/scores.js';
export type { EvaluateOptions, Evaluation, ProtocolScores, TargetUpstream } from './protocol/scores.js';
export { tune } from './protocol/tune.js';
export type { TuneOptions, TuneProgress, TuneResult, TuneRow } from './protocol/tune.js';
export { l2spStrategy, ewcStrategy, l2spConfigSchema, ewcConfigSchema, weightPenalty, diagonalFisher } from './strategies/regularized.js';
export type { L2spConfig, EwcConfig } from './strategies/regularized.js';
export { wiseFtStrategy, dareStrategy, tiesStrategy, tiesMerge, wiseFtConfigSchema, dareConfigSchema, tiesConfigSchema, tiesOptionsSchema, wiseFtWeight, dareScale, dareWeight, tiesTrim, tiesWeight } from './strategies/posthoc.js';
export type { WiseFtConfig, DareConfig, TiesConfig, TiesOptions } from './strategies/posthoc.js';
export { BENCH_SUITE, QUICK_SUITE, SELECTIVE_TARGETS, LOW_RANK_TARGETS, suiteLr } from './protocol/suite.js';
export type { SuiteEntry } from './protocol/suite.js';
