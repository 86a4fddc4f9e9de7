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
export { SafetensorsError, parseSafetensors, serializeSafetensors, MAX_HEADER_BYTES } from './io/safetensors.js';
export type { SafetensorsDtype, SafetensorsFile, SafetensorsTensor, SerializableDtype, SerializableTensor } from './io/safetensors.js';
export { f16ToF32, bf16ToF32, f32ToF16, f8e4m3ToF32, f8e5m2ToF32, f8e8m0ToF32 } from './io/float-formats.js';
export { toHfConfig, fromHfConfig } from './io/hf-config.js';
export type { HfLlavaConfig } from './io/hf-config.js';
export { ModelFilesError, saveModelFiles, loadModelFiles, parseModelFiles, encodeModelFiles, llavaParameterShapes, CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE } from './io/model-files.js';
export type { ModelTensor, ModelFilesInput, LoadedModelFiles } from './io/model-files.js';
export { saveModel, loadModel, loadModelFromBytes, modelTensors } from './model/checkpoint.js';
export type { LoadedModel } from './model/checkpoint.js';
