/**
 * The adapter directory, in memory (browser-safe; adapter-files.node.ts moves it to and from disk).
 *   adapter_config.json         { strategy, config, …PEFT fields when the method has a PEFT layout }
 *   adapter_model.safetensors   the instance's state, F32, metadata { format: 'pt' }
 *
 * Key mapping (state name → safetensors key):
 *   LoRA     '<module path>.lora_A' (r, I)  →  'base_model.model.<module path>.lora_A.weight'
 *            '<module path>.lora_B' (O, r)  →  'base_model.model.<module path>.lora_B.weight'
 *            with adapter_config.json carrying PEFT's fields (peft_type 'LORA', r, lora_alpha,
 *            lora_dropout, target_modules = the resolved module paths, use_rslora, bias 'none',
 *            base_model_name_or_path when given). This is PEFT's layout for a LoRA on
 *            LlavaForConditionalGeneration with the classic llava-1.5-hf module names
 *            (language_model.model.layers.{i}…), which are keel's names: `PeftModel.from_pretrained`
 *            on such a base continues the adapter in PyTorch. Newer transformers versions nest the
 *            modules as model.language_model.layers.{i}… — rename the keys for those.
 *   full / bitfit (selective)  the tuned base tensors under their own names
 *            ('multi_modal_projector.linear_1.weight' …), which is the base checkpoint's layout, so
 *            the file also overlays a model.safetensors of the same architecture.
 *
 * Dimension legend: I input features, O output features, r rank.
 * Non-goals: half-precision files, several adapters in one directory.
 */
import { parseSafetensors, serializeSafetensors } from '@keel/mllm';
import type { StrategyDefinition, TensorState } from './strategy.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** The two files' contents. */
export interface AdapterFiles {
  configJson: string;
  safetensors: Uint8Array;
}

/** What a directory holds, decoded: the method's name, its config as written, state by state name. */
export interface DecodedAdapter {
  strategy: string;
  config: Record<string, unknown>;
  state: Map<string, TensorState>;
}

export interface EncodeAdapterOptions {
  /** PEFT's base_model_name_or_path (a hub id or directory of the base model). */
  baseModel?: string;
}

/** Serializes an instance's state and config into the adapter files. */
export function encodeAdapter<C>(def: StrategyDefinition<C>, config: C, modules: readonly string[], state: ReadonlyMap<string, TensorState>, options: EncodeAdapterOptions = {}): AdapterFiles {
  const key = (name: string) => (def.peft ? def.peft.fileKey(name) : name);
  const tensors = [...state].map(([name, t]) => [key(name), { dtype: 'F32' as const, shape: t.shape, data: t.data }] as const);
  const json: Record<string, unknown> = { strategy: def.name, config };
  if (def.peft) Object.assign(json, def.peft.config(config, modules), { base_model_name_or_path: options.baseModel ?? null });
  else if (options.baseModel !== undefined) json.base_model_name_or_path = options.baseModel;
  return { configJson: `${JSON.stringify(json, null, 2)}\n`, safetensors: serializeSafetensors(tensors, { format: 'pt' }) };
}

/** Reads the strategy name and its config from adapter_config.json; `source` names the file in errors. */
export function readAdapterConfig(configJson: string, source: string): { strategy: string; config: Record<string, unknown>; baseModel: string | null } {
  let json: unknown;
  try {
    json = JSON.parse(configJson);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${source}: expected a JSON object`);
  const { strategy, config } = json as { strategy?: unknown; config?: unknown };
  if (typeof strategy !== 'string') {
    const peft = (json as { peft_type?: unknown }).peft_type;
    throw new Error(`${source}: missing the "strategy" field${peft !== undefined ? ` (a PEFT-only file with peft_type ${JSON.stringify(peft)}; keel needs the "strategy" and "config" it writes)` : ''}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error(`${source}: "config" must be an object, got ${JSON.stringify(config)}`);
  const base = (json as { base_model_name_or_path?: unknown }).base_model_name_or_path;
  return { strategy, config: config as Record<string, unknown>, baseModel: typeof base === 'string' && base ? base : null };
}

/** Decodes the weights file into state names with `def`'s key mapping; a foreign key is an error. */
export function decodeAdapterState<C>(def: StrategyDefinition<C>, safetensors: Uint8Array, source: string): Map<string, TensorState> {
  const file = parseSafetensors(safetensors, source);
  const out = new Map<string, TensorState>();
  const foreign: string[] = [];
  for (const [key, t] of file.tensors) {
    const name = def.peft ? def.peft.stateName(key) : key;
    if (name === null) {
      foreign.push(key);
      continue;
    }
    if (!(t.data instanceof Float32Array)) throw new Error(`${source}: tensor '${key}' is ${t.dtype}; adapter tensors must be floating point`);
    out.set(name, { shape: [...t.shape], data: t.data });
  }
  if (foreign.length) throw new Error(`${source}: ${foreign.length} tensor(s) are not ${def.name} keys: ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', …' : ''}`);
  return out;
}
