/**
 * A model checkpoint as a directory in Hugging Face's LLaVA layout:
 *   config.json         toHfConfig(config), 2-space JSON
 *   model.safetensors   every parameter as F32, metadata { format: 'pt' }
 *   tokenizer.json      when given
 *   <extra files>       caller's JSON objects or text (e.g. a tuning method's adapter config)
 * saveModelFiles / loadModelFiles work on a directory in Node (via files.node.ts, imported only when
 * called); encodeModelFiles / parseModelFiles do the same on in-memory contents for browsers
 * (fetched bytes in, file contents out).
 *
 * Parameter names. keel's names ARE the classic llava-1.5-hf names (i layer index):
 *   vision_tower.vision_model.embeddings.class_embedding                         (Wv)
 *   vision_tower.vision_model.embeddings.patch_embedding.weight                  (Wv, C·p·p)  keel
 *                                                                                (Wv, C, p, p) file
 *   vision_tower.vision_model.embeddings.position_embedding.weight               (P + 1, Wv)
 *   vision_tower.vision_model.pre_layrnorm.{weight,bias}                         (Wv)  [sic: HF's spelling]
 *   vision_tower.vision_model.encoder.layers.{i}.self_attn.{q,k,v,out}_proj.{weight,bias}  (Wv, Wv), (Wv)
 *   vision_tower.vision_model.encoder.layers.{i}.layer_norm{1,2}.{weight,bias}   (Wv)
 *   vision_tower.vision_model.encoder.layers.{i}.mlp.fc1.{weight,bias}           (Fv, Wv), (Fv)
 *   vision_tower.vision_model.encoder.layers.{i}.mlp.fc2.{weight,bias}           (Wv, Fv), (Wv)
 *   multi_modal_projector.linear_1.{weight,bias}                                 (Hp, d²·Wv), (Hp)
 *   multi_modal_projector.linear_2.{weight,bias}                                 (W, Hp), (W)
 *   language_model.model.embed_tokens.weight                                     (V, W)
 *   language_model.model.layers.{i}.self_attn.{q,o}_proj.weight                  (W, W)
 *   language_model.model.layers.{i}.self_attn.{k,v}_proj.weight                  (Hkv·D, W)
 *   language_model.model.layers.{i}.mlp.{gate,up}_proj.weight                    (F, W)
 *   language_model.model.layers.{i}.mlp.down_proj.weight                         (W, F)
 *   language_model.model.layers.{i}.{input_layernorm,post_attention_layernorm}.weight  (W)
 *   language_model.model.norm.weight                                             (W)
 *   language_model.lm_head.weight                                                (V, W), absent when tied
 * Linear weights are (out, in) as in PyTorch. The one shape difference: HF stores patch_embedding as
 * a stride-p conv kernel (Wv, C, p, p) while keel stores a Linear (Wv, C·p·p) over patches flattened
 * in (c, py, px) order — the same bytes; files hold the 4-D form, keel's tensors the 2-D one.
 * There is no post_layernorm: LLaVA takes the last encoder layer's patch features without it, so an
 * HF checkpoint's `vision_tower.vision_model.post_layernorm.*` (and an lm_head of a tied model) are
 * returned in `unused` rather than failing. Checkpoints in the newer transformers layout
 * (`model.vision_tower.…`, `model.language_model.…`, `lm_head.weight`) are renamed to these names.
 *
 * Dimension legend: C channels, p patch side, P patches, Wv/W vision/text width, Fv/F MLP widths,
 * Hp projector hidden, V vocabulary, Hkv key/value heads, D head dim.
 * Non-goals: sharded checkpoints (model.safetensors.index.json), half-precision saving, streaming.
 */
import { patchCount, projectorHidden, projectorInput, resolveConfig, type MllmConfig } from '../config.js';
import { resamplerParameterShapes } from '../model/resampler.js';
import { fromHfConfig, toHfConfig } from './hf-config.js';
import { parseSafetensors, serializeSafetensors, type SerializableTensor } from './safetensors.js';

/** Thrown for a missing, unreadable or inconsistent checkpoint file; the message names the file. */
export class ModelFilesError extends Error {
  override name = 'ModelFilesError';
}

export interface ModelTensor {
  shape: number[];
  data: Float32Array;
}

export interface ModelFilesInput {
  config: MllmConfig;
  tensors: ReadonlyMap<string, ModelTensor>;
  tokenizer?: object;
  /** More files for the directory: objects are written as 2-space JSON, strings as they are. */
  extra?: Record<string, object | string>;
  keelVersion?: string;
}

export interface LoadedModelFiles {
  config: MllmConfig;
  tensors: Map<string, ModelTensor>;
  tokenizer: object | null;
  /** Tensors in the file that the config has no parameter for (e.g. CLIP's post_layernorm). */
  unused: string[];
}

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const TOKENIZER_FILE = 'tokenizer.json';
const PATCH_EMBEDDING = 'vision_tower.vision_model.embeddings.patch_embedding.weight';
const RESERVED = new Set([CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE]);

/** Every parameter the config implies, with keel's shape, in model order. */
export function llavaParameterShapes(c: MllmConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const { vision: v, text: t } = c;
  const vt = 'vision_tower.vision_model';
  m.set(`${vt}.embeddings.class_embedding`, [v.width]);
  m.set(PATCH_EMBEDDING, [v.width, v.channels * v.patchSize ** 2]);
  m.set(`${vt}.embeddings.position_embedding.weight`, [patchCount(c) + 1, v.width]);
  m.set(`${vt}.pre_layrnorm.weight`, [v.width]);
  m.set(`${vt}.pre_layrnorm.bias`, [v.width]);
  for (let i = 0; i < v.layers; i++) {
    const l = `${vt}.encoder.layers.${i}`;
    for (const p of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      m.set(`${l}.self_attn.${p}.weight`, [v.width, v.width]);
      m.set(`${l}.self_attn.${p}.bias`, [v.width]);
    }
    m.set(`${l}.layer_norm1.weight`, [v.width]);
    m.set(`${l}.layer_norm1.bias`, [v.width]);
    m.set(`${l}.mlp.fc1.weight`, [v.intermediate, v.width]);
    m.set(`${l}.mlp.fc1.bias`, [v.intermediate]);
    m.set(`${l}.mlp.fc2.weight`, [v.width, v.intermediate]);
    m.set(`${l}.mlp.fc2.bias`, [v.width]);
    m.set(`${l}.layer_norm2.weight`, [v.width]);
    m.set(`${l}.layer_norm2.bias`, [v.width]);
  }
  if (c.projector.type === 'resampler') {
    for (const [name, shape] of resamplerParameterShapes(c)) m.set(name, shape);
  } else {
    const hp = projectorHidden(c);
    m.set('multi_modal_projector.linear_1.weight', [hp, projectorInput(c)]);
    m.set('multi_modal_projector.linear_1.bias', [hp]);
    m.set('multi_modal_projector.linear_2.weight', [t.width, hp]);
    m.set('multi_modal_projector.linear_2.bias', [t.width]);
  }
  m.set('language_model.model.embed_tokens.weight', [t.vocabSize, t.width]);
  const kvWidth = (t.width / t.heads) * t.kvHeads;
  for (let i = 0; i < t.layers; i++) {
    const l = `language_model.model.layers.${i}`;
    m.set(`${l}.self_attn.q_proj.weight`, [t.width, t.width]);
    m.set(`${l}.self_attn.k_proj.weight`, [kvWidth, t.width]);
    m.set(`${l}.self_attn.v_proj.weight`, [kvWidth, t.width]);
    m.set(`${l}.self_attn.o_proj.weight`, [t.width, t.width]);
    m.set(`${l}.mlp.gate_proj.weight`, [t.intermediate, t.width]);
    m.set(`${l}.mlp.up_proj.weight`, [t.intermediate, t.width]);
    m.set(`${l}.mlp.down_proj.weight`, [t.width, t.intermediate]);
    m.set(`${l}.input_layernorm.weight`, [t.width]);
    m.set(`${l}.post_attention_layernorm.weight`, [t.width]);
  }
  m.set('language_model.model.norm.weight', [t.width]);
  if (!t.tieEmbeddings) m.set('language_model.lm_head.weight', [t.vocabSize, t.width]);
  return m;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const listNames = (names: string[]) => (names.length <= 8 ? names.join(', ') : `${names.slice(0, 8).join(', ')} … (${names.length} in all)`);

/** The directory's files as contents (strings are UTF-8 text), validated against the config. */
export function encodeModelFiles(input: ModelFilesInput): Map<string, Uint8Array | string> {
  const config = resolveConfig(input.config, 'encodeModelFiles: config');
  const expected = llavaParameterShapes(config);
  const fail = (msg: string) => new ModelFilesError(`encodeModelFiles: ${msg}`);
  const missing = [...expected.keys()].filter((n) => !input.tensors.has(n));
  if (missing.length) throw fail(`missing ${missing.length} tensors the config needs: ${listNames(missing)}`);
  const unknown = [...input.tensors.keys()].filter((n) => !expected.has(n));
  if (unknown.length) throw fail(`${unknown.length} tensors the config has no parameter for: ${listNames(unknown)}`);

  const out: [string, SerializableTensor][] = [];
  for (const [name, shape] of expected) {
    const t = input.tensors.get(name)!;
    if (!(t.data instanceof Float32Array)) throw fail(`tensor ${name}: data must be a Float32Array`);
    if (!sameShape(t.shape, shape)) throw fail(`tensor ${name}: shape [${t.shape}] but the config implies [${shape}]`);
    if (t.data.length !== shape.reduce((a, b) => a * b, 1)) throw fail(`tensor ${name}: ${t.data.length} values for shape [${shape}]`);
    const { width, channels, patchSize } = config.vision;
    const fileShape = name === PATCH_EMBEDDING ? [width, channels, patchSize, patchSize] : shape;
    out.push([name, { dtype: 'F32', shape: fileShape, data: t.data }]);
  }

  const files = new Map<string, Uint8Array | string>();
  const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
  files.set(WEIGHTS_FILE, serializeSafetensors(out, { format: 'pt' }));
  if (input.tokenizer !== undefined) {
    if (typeof input.tokenizer !== 'object' || input.tokenizer === null) throw fail(`tokenizer must be an object (tokenizer.json content), got ${input.tokenizer === null ? 'null' : typeof input.tokenizer}`);
    files.set(TOKENIZER_FILE, json(input.tokenizer));
  }
  for (const [name, content] of Object.entries(input.extra ?? {})) {
    if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(name) || RESERVED.has(name)) {
      throw fail(`extra file name ${JSON.stringify(name)} must be a plain file name (letters, digits, . _ -) other than ${[...RESERVED].join(', ')}`);
    }
    if (typeof content !== 'string' && (typeof content !== 'object' || content === null)) throw fail(`extra file ${name}: content must be an object or a string`);
    files.set(name, typeof content === 'string' ? content : json(content));
  }
  // config.json last: a directory whose config is new has its new weights too (see saveModelFiles)
  files.set(CONFIG_FILE, json(toHfConfig(config, input.keelVersion !== undefined ? { keelVersion: input.keelVersion } : {})));
  return files;
}

/** Newer transformers (≥ 4.52) nests LLaVA's parts under `model.`; map them back to the classic names. */
function classicName(name: string): string {
  if (name.startsWith('model.language_model.')) return `language_model.model.${name.slice('model.language_model.'.length)}`;
  if (name.startsWith('model.vision_tower.')) return name.slice('model.'.length);
  if (name.startsWith('model.multi_modal_projector.')) return name.slice('model.'.length);
  if (name === 'lm_head.weight') return 'language_model.lm_head.weight';
  return name;
}

/** Loads a checkpoint from contents; `source` (a directory or URL) prefixes the file names in errors. */
export function parseModelFiles(files: { configJson: string; safetensors: Uint8Array; tokenizerJson?: string | null }, source: string): LoadedModelFiles {
  const where = (file: string) => `${source}/${file}`;
  const config = fromHfConfig(parseJson(files.configJson, where(CONFIG_FILE)), where(CONFIG_FILE));
  const file = parseSafetensors(files.safetensors, where(WEIGHTS_FILE));
  const fail = (msg: string) => new ModelFilesError(`${where(WEIGHTS_FILE)}: ${msg}`);

  const found = new Map<string, { shape: number[]; data: Float32Array | Int32Array; dtype: string }>();
  for (const [name, t] of file.tensors) {
    const classic = classicName(name);
    if (found.has(classic)) throw fail(`tensors ${name} and ${classic} name the same parameter`);
    found.set(classic, t);
  }
  const expected = llavaParameterShapes(config);
  const missing = [...expected.keys()].filter((n) => !found.has(n));
  if (missing.length) throw fail(`missing ${missing.length} tensors the config needs: ${listNames(missing)}`);

  const tensors = new Map<string, ModelTensor>();
  for (const [name, shape] of expected) {
    const t = found.get(name)!;
    if (!(t.data instanceof Float32Array)) throw fail(`tensor ${name} has integer dtype ${t.dtype}; parameters must be floating point`);
    const { width, channels, patchSize } = config.vision;
    const fileShape = name === PATCH_EMBEDDING ? [width, channels, patchSize, patchSize] : shape;
    if (!sameShape(t.shape, fileShape)) throw fail(`tensor ${name} has shape [${t.shape}] but config.json implies [${fileShape}]`);
    tensors.set(name, { shape: [...shape], data: t.data });
  }
  const unused = [...found.keys()].filter((n) => !expected.has(n)).sort();

  let tokenizer: object | null = null;
  if (files.tokenizerJson != null) {
    const parsed = parseJson(files.tokenizerJson, where(TOKENIZER_FILE));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ModelFilesError(`${where(TOKENIZER_FILE)}: expected a JSON object`);
    tokenizer = parsed;
  }
  return { config, tensors, tokenizer, unused };
}

function parseJson(text: string, file: string): unknown {
  if (typeof text !== 'string') throw new ModelFilesError(`${file}: expected the file's text, got ${typeof text}`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ModelFilesError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

type NodeFiles = typeof import('./files.node.js');
async function nodeFiles(caller: string): Promise<NodeFiles> {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (typeof proc?.versions?.node !== 'string') {
    throw new ModelFilesError(`${caller}: needs Node's file system; in a browser use encodeModelFiles / parseModelFiles on fetched contents`);
  }
  return import('./files.node.js');
}

/**
 * Writes the checkpoint into `dir` (created if needed). Each file is replaced atomically, weights
 * first and config.json last: an interrupted save of a same-shaped model (the usual case: a training
 * checkpoint over the previous one) still leaves a loadable directory; one whose shapes changed
 * leaves a mismatch that loadModelFiles reports by tensor name.
 */
export async function saveModelFiles(dir: string, input: ModelFilesInput): Promise<void> {
  const files = encodeModelFiles(input);
  const fs = await nodeFiles('saveModelFiles');
  await fs.ensureDir(dir);
  for (const [name, content] of files) await fs.writeFileAtomic(fs.joinPath(dir, name), content);
}

/** Reads a checkpoint directory written by saveModelFiles or by transformers' LLaVA save_pretrained. */
export async function loadModelFiles(dir: string): Promise<LoadedModelFiles> {
  const fs = await nodeFiles('loadModelFiles');
  const kind = await fs.pathKind(dir);
  if (kind === 'missing') throw new ModelFilesError(`${dir}: model directory does not exist`);
  if (kind !== 'directory') throw new ModelFilesError(`${dir}: expected a model directory, found a ${kind}`);
  const read = async (name: string, hint: string) => {
    const bytes = await fs.readBytesIfExists(fs.joinPath(dir, name));
    if (bytes === null && hint) throw new ModelFilesError(`${fs.joinPath(dir, name)}: missing (${hint})`);
    return bytes;
  };
  const config = (await read(CONFIG_FILE, 'the Hugging Face LLaVA config saveModelFiles writes'))!;
  if ((await fs.pathKind(fs.joinPath(dir, WEIGHTS_FILE))) === 'missing' && (await fs.pathKind(fs.joinPath(dir, `${WEIGHTS_FILE}.index.json`))) !== 'missing') {
    throw new ModelFilesError(`${fs.joinPath(dir, WEIGHTS_FILE)}: missing; the directory holds a sharded checkpoint (model.safetensors.index.json), which keel does not read`);
  }
  const weights = (await read(WEIGHTS_FILE, 'the weights, as one safetensors file'))!;
  const tokenizer = await read(TOKENIZER_FILE, '');
  const text = (b: Uint8Array, name: string) => {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      throw new ModelFilesError(`${fs.joinPath(dir, name)}: not valid UTF-8 text`);
    }
  };
  const source = dir.replace(/[\\/]+$/, '') || dir;
  return parseModelFiles({ configJson: text(config, CONFIG_FILE), safetensors: weights, tokenizerJson: tokenizer && text(tokenizer, TOKENIZER_FILE) }, source);
}
