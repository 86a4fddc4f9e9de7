/**
 * Saving and loading a whole model directory — `config.json` (HF LLaVA), `model.safetensors`,
 * `tokenizer.json` — as a MultimodalModel plus its tokenizer. The file formats and the parameter
 * name mapping live in io/; this file only moves tensors between the GPU and those files.
 *
 * Non-goals: sharded checkpoints, lazy loading, dtype conversion on save (weights are written f32).
 */
import type { Runtime } from '@keel/kernels';
import { loadModelFiles, ModelFilesError, parseModelFiles, saveModelFiles } from '../io/model-files.js';
import { parseTokenizerJson } from '../tokenizer/load.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { MultimodalModel } from './mllm.js';

export interface LoadedModel {
  model: MultimodalModel;
  tokenizer: Tokenizer;
  /** Checkpoint tensors the model has no parameter for (e.g. an HF CLIP post_layernorm). */
  unused: string[];
}

/** Every parameter read back to the CPU, by name. */
export async function modelTensors(model: MultimodalModel): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, p] of model.namedParameters()) out.set(name, { shape: [...p.shape], data: (await p.toArray()) as Float32Array });
  return out;
}

/** Writes the model's config, weights and tokenizer (and any extra files) into `dir`. */
export async function saveModel(dir: string, model: MultimodalModel, tokenizer: Tokenizer, extra: Record<string, object | string> = {}): Promise<void> {
  await saveModelFiles(dir, { config: model.config, tensors: await modelTensors(model), tokenizer: tokenizer.toJSON(), extra });
}

/** The checkpoint's tokenizer; a missing, malformed or oversized one is a ModelFilesError like the other files'. */
function checkpointTokenizer(files: Awaited<ReturnType<typeof loadModelFiles>>, source: string): Tokenizer {
  if (!files.tokenizer) throw new ModelFilesError(`${source}: tokenizer.json is missing; the model cannot read or write text without it`);
  let tokenizer: Tokenizer;
  try {
    tokenizer = parseTokenizerJson(files.tokenizer, `${source}/tokenizer.json`);
  } catch (e) {
    // the tokenizer readers report bad input as plain Errors prefixed with the file; a TypeError or
    // RangeError from inside them is a bug and stays what it is
    if (e instanceof Error && e.constructor === Error) throw new ModelFilesError(e.message, { cause: e });
    throw e;
  }
  if (tokenizer.vocabSize > files.config.text.vocabSize) {
    throw new ModelFilesError(`${source}: tokenizer has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${files.config.text.vocabSize}`);
  }
  return tokenizer;
}

function build(rt: Runtime, files: Awaited<ReturnType<typeof loadModelFiles>>, source: string): LoadedModel {
  const tokenizer = checkpointTokenizer(files, source);
  const model = new MultimodalModel(rt, files.config);
  try {
    const params = model.namedParameters();
    const dict = new Map<string, Float32Array>();
    for (const [name, t] of files.tensors) {
      const p = params.get(name);
      if (p && p.shape.join() !== t.shape.join()) throw new Error(`tensor '${name}' has shape [${t.shape}], the model expects [${p.shape}]`);
      dict.set(name, t.data);
    }
    model.loadStateDict(dict);
    return { model, tokenizer, unused: files.unused };
  } catch (e) {
    model.dispose();
    throw new Error(`${source}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Reads a model directory written by saveModel (or an HF LLaVA one with the same architecture). */
export async function loadModel(rt: Runtime, dir: string): Promise<LoadedModel> {
  return build(rt, await loadModelFiles(dir), dir);
}

/** The same from fetched bytes (browsers): config.json text, model.safetensors bytes, tokenizer.json text. */
export function loadModelFromBytes(rt: Runtime, files: { configJson: string; safetensors: Uint8Array; tokenizerJson: string }, source = 'model'): LoadedModel {
  return build(rt, parseModelFiles(files, source), source);
}
