/**
 * @keel/mllm — a small LLaVA-style multimodal model (CLIP-style ViT → MLP projector → Llama-style
 * decoder), its generation, checkpoint IO, tokenizers and data. Knows nothing of tuning strategies.
 */
export { resolveConfig, ConfigError, imageTokenCount, projectorHidden, mllmConfigSchema } from './config.js';
export type { MllmConfig, MllmConfigInput, VisionConfig, TextConfig, ProjectorConfig } from './config.js';
export { MultimodalModel, Projector, imageRows } from './model/mllm.js';
export type { ModelInput, ForwardOptions, ForwardResult } from './model/mllm.js';
export { VisionTower, patchify, patchTensor } from './model/vision.js';
export { LanguageModel } from './model/language.js';
export type { LayerCache, DecoderOptions } from './model/language.js';
export { collate, collatePrompts, promptIds, stackImages, IGNORE } from './model/collate.js';
export type { Example, TrainingBatch } from './model/collate.js';
export { generate, pickToken } from './model/generate.js';
export type { GenerateOptions, Generation } from './model/generate.js';
export { referenceLogits } from './model/reference.js';
export { SPECIAL_TOKENS, SPECIAL_TOKEN_NAMES } from './tokenizer/tokenizer.js';
export type { DecodeOptions, SpecialTokenIds, SpecialTokenName, Tokenizer } from './tokenizer/tokenizer.js';
export { WordTokenizer } from './tokenizer/word.js';
export { HfTokenizer, SPECIAL_CANDIDATES } from './tokenizer/hf.js';
export type { TokenizerConfigJson } from './tokenizer/hf.js';
export { parseTokenizerJson } from './tokenizer/load.js';
