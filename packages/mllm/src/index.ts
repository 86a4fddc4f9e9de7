/**
 * @keel/mllm — a small LLaVA-style multimodal model (CLIP-style ViT → MLP projector or Perceiver
 * resampler → Llama-style decoder), its generation, checkpoint IO, tokenizers and data. Knows
 * nothing of tuning strategies.
 */
export { resolveConfig, ConfigError, imageTokenCount, patchCount, projectorHidden, projectorInput, resamplerSizes, mllmConfigSchema, RESAMPLER_DEFAULTS } from './config.js';
export type { MllmConfig, MllmConfigInput, VisionConfig, TextConfig, ProjectorConfig, MlpProjectorConfig, ResamplerConfig } from './config.js';
export { ARCHITECTURES, ARCH_NAMES, archConfig, isArchName, mergeConfig } from './arch.js';
export type { ArchName, Architecture } from './arch.js';
export { MultimodalModel, Projector, imageRows } from './model/mllm.js';
export type { Connector, ModelInput, ForwardOptions, ForwardResult } from './model/mllm.js';
export { Resampler, ResamplerLayer, resamplerParameterShapes } from './model/resampler.js';
export { VisionTower, patchify, patchTensor } from './model/vision.js';
export { LanguageModel } from './model/language.js';
export type { LayerCache, DecoderOptions, PrefixKV, PrefixSource } from './model/language.js';
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
export { checkImage, decodePng, encodePng, fromModelInput, padCenter, resize, toModelInput } from './data/image.js';
export type { ChannelStat, ModelInputOptions, RgbImage } from './data/image.js';
export { ALL_SHAPES, BACKGROUND_RGB, BASE_SHAPES, CANVAS, COLORS, COLOR_RGB, EXTENT, MIN_RENDER_SIZE, NOVEL_SHAPES, POSITIONS, SIZES, centrePixel, checkRenderSize, insideShape, placeScene, positionOf, renderScene, sceneImage, sceneInSplit, sceneKey, sceneSplit } from './data/world.js';
export type { Color, Layout, ObjectSpec, Position, Scene, SceneObject, Shape, Size, Split } from './data/world.js';
export { CAPTION_PROMPT, WORLD_GENERATORS, captionOf, objectPhrase, worldTexts } from './data/world-tasks.js';
export type { WorldSample, WorldTaskName } from './data/world-tasks.js';
export { MNIST_PROMPT, MNIST_SIDE, MNIST_TRAIN_FRACTION, digitImage, loadMnist, mnistSamples, mnistSplitRange, mnistTexts, packageMnistSource } from './data/mnist.js';
export type { MnistDigits, MnistSample, MnistSource } from './data/mnist.js';
export { TEXT_FAMILIES, textSamples, textTexts } from './data/text.js';
export type { TextFamily, TextItem, TextSample } from './data/text.js';
export { ALL_TASKS, DEFAULT_IMAGE_SIZE, DOWNSTREAM_TASKS, GENERAL_TASKS, TASKS, exactMatch, getTask, vocabularyWords } from './data/tasks.js';
export type { Sample, SampleOptions, Task, TaskKind } from './data/tasks.js';
export { numberWord } from './data/number-words.js';
export { Rng, fnv1a, streamSeed } from './data/prng.js';
export { accuracyByKind, answerLoss, trainStep, trainOnExamples, evaluateExamples, normalizeAnswer } from './train/loop.js';
export type { StepHooks, EvaluationResult, KindScores } from './train/loop.js';
export { pretrain, pretrainRunDifference, pretrainRunIdentity, scoreTasks, scoreTasksByKind, toExample } from './train/pretrain.js';
export type { PretrainCheckpoint, PretrainOptions, PretrainProgress, PretrainResult, PretrainRunIdentity } from './train/pretrain.js';
export { decodePretrainCheckpoint, encodePretrainCheckpoint, PRETRAIN_CHECKPOINT_FILES, PRETRAIN_CHECKPOINT_FORMAT, PRETRAIN_OPTIMIZER_FILE, PRETRAIN_STATE_FILE } from './train/pretrain-checkpoint.js';
export { modelCard } from './train/card.js';
export type { CardContext } from './train/card.js';
