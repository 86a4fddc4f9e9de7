/**
 * A resumable checkpoint of one `tune` run (tune.ts), in memory and browser-safe;
 * checkpoint.node.ts puts it on disk. It holds everything the next step depends on, so a resumed run
 * reproduces the uninterrupted run's losses and weights bit for bit:
 *   the step reached and the data stream's state (SeededStream.state),
 *   the run's identity (resolved method config, task, budget, lr, seed …): a resume with any of them
 *     changed would silently be another run, so `runDifference` names the first that differs,
 *   what the result reports so far (loss and T/U curves, mask snapshots, seconds, the partial
 *     progress mean, the base model's scores, which a resume does not recompute),
 *   the trainable tensors' values and the method's runningState() (SPIDER's S, top-k's sums …),
 *   the optimizer's stateDict() (moments, step, and MaskedAdamW's current mask).
 * W0 and the method's other init are not saved: a resume applies the method to the same base again.
 *
 * Encoding: two files.
 *   trainer_state.json    every field but the arrays, plus `tensors`, an index of the arrays
 *                         (key → dtype, shape)
 *   tensors.safetensors   every array, keyed 'weights.<trainable name>', 'running.<name>',
 *                         'optimizer.slot.<slot>', 'optimizer.extra.<key>'. f32 arrays are F32; u32
 *                         words (packed masks) are I32 over the same bytes, so no bit pattern is ever
 *                         converted. Optimizer extras that are strings (MaskedAdamW's mode) stay in
 *                         the JSON.
 * Decoding checks the format version, every JSON field, and that the safetensors file holds exactly
 * the indexed arrays with their dtypes and shapes; errors name the file and the field or key.
 *
 * Non-goals: reading other formats than the current one, half-precision state, sharding.
 */
import type { OptimizerState } from '@keel/autograd';
import { parseSafetensors, serializeSafetensors, type SerializableTensor } from '@keel/mllm';
import { z } from 'zod';
import type { RunningState, TensorState } from '../strategies/strategy.js';
import type { Evaluation } from './scores.js';

export const CHECKPOINT_FORMAT = 1;
export const CHECKPOINT_STATE_FILE = 'trainer_state.json';
export const CHECKPOINT_TENSORS_FILE = 'tensors.safetensors';

/** The options that make a run what it is; a checkpoint resumes only a run with all of them equal. */
export interface TuneRunIdentity {
  /** `strategy` plus the method's config as its schema resolved it (defaults filled). */
  config: { strategy: string; [field: string]: unknown };
  task: string;
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  pool: number;
  evalCount: number;
  evalEvery: number;
  progressEvery: number;
  /** The caller's own identity fields (the CLI: the base model directory). */
  tag: Record<string, string>;
}

export interface TuneCheckpoint {
  format: typeof CHECKPOINT_FORMAT;
  /** Steps completed; the resumed run starts at step + 1. */
  step: number;
  /** The batch-draw stream's state after `step` steps. */
  stream: number;
  run: TuneRunIdentity;
  lossCurve: [number, number][];
  evalCurve: { step: number; T: number; U: number }[];
  /** Mask density snapshots so far: [trainable name, density] in the method's order. */
  masks: { step: number; density: [string, number][] }[];
  /** Training seconds of steps 1 … step (forward, backward, update; evaluation excluded). */
  trainSec: number;
  /** Sum and count of the losses since the last progress report. */
  recent: number;
  recentCount: number;
  base: Evaluation;
  /** The trainable tensors' values by trainable name (TuningHandle.trainableParameters()). */
  weights: Map<string, TensorState>;
  running: RunningState;
  optimizer: OptimizerState;
}

/** The first identity field that differs, as a dotted path ('lr', 'config.r', 'tag.base'), with both values. */
export function runDifference(saved: TuneRunIdentity, now: TuneRunIdentity): { field: string; saved: unknown; now: unknown } | null {
  const fields = ['config', 'task', 'steps', 'batchSize', 'lr', 'weightDecay', 'seed', 'pool', 'evalCount', 'evalEvery', 'progressEvery', 'tag'] as const;
  for (const f of fields) {
    const d = firstDifference(saved[f], now[f], f);
    if (d) return d;
  }
  return null;
}

function firstDifference(a: unknown, b: unknown, path: string): { field: string; saved: unknown; now: unknown } | null {
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (!isObject(a) || !isObject(b) || Array.isArray(a) !== Array.isArray(b)) return Object.is(a, b) ? null : { field: path, saved: a, now: b };
  if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) return { field: path, saved: a, now: b };
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  for (const k of keys) {
    const d = firstDifference(a[k], b[k], Array.isArray(a) ? `${path}[${k}]` : `${path}.${k}`);
    if (d) return d;
  }
  return null;
}

type ArrayDtype = 'f32' | 'u32';
const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const count = z.number().int('must be an integer').min(0, 'must be ≥ 0');
const identitySchema = z
  .object({
    config: z.looseObject({ strategy: z.string() }),
    task: z.string(),
    steps: count,
    batchSize: count,
    lr: finite,
    weightDecay: finite,
    seed: count,
    pool: count,
    evalCount: count,
    evalEvery: count,
    progressEvery: count,
    tag: z.record(z.string(), z.string()),
  })
  .strict();
// not strict: a caller's base Evaluation may carry more fields; the checkpoint keeps the protocol's
const evaluationSchema = z.object({
  T: finite,
  U: finite,
  scores: z.record(z.string(), finite),
  // absent in checkpoints written before per-kind scores existed: those resume without them
  byKind: z.record(z.string(), z.record(z.string(), z.object({ accuracy: finite, count: z.number().int().nonnegative() }))).default({}),
  samples: z.array(z.object({ prompt: z.string(), answer: z.string(), prediction: z.string() })),
});
const stateSchema = z
  .object({
    format: z.literal(CHECKPOINT_FORMAT),
    step: count,
    stream: count.max(0xffffffff, 'must be a u32'),
    run: identitySchema,
    lossCurve: z.array(z.tuple([count, finite])),
    evalCurve: z.array(z.object({ step: count, T: finite, U: finite }).strict()),
    masks: z.array(z.object({ step: count, density: z.array(z.tuple([z.string(), finite])) }).strict()),
    trainSec: finite,
    recent: finite,
    recentCount: count,
    base: evaluationSchema,
    optimizer: z
      .object({
        kind: z.string(),
        step: count,
        lengths: z.array(count),
        groups: z.array(z.object({ lr: finite, weightDecay: finite }).strict()),
        strings: z.record(z.string(), z.string()),
      })
      .strict(),
    tensors: z.record(z.string(), z.object({ dtype: z.enum(['f32', 'u32']), shape: z.array(count) }).strict()),
  })
  .strict();

const PREFIX = { weights: 'weights.', running: 'running.', slot: 'optimizer.slot.', extra: 'optimizer.extra.' } as const;

/** trainer_state.json's text and tensors.safetensors' bytes of `c`. */
export function encodeCheckpoint(c: TuneCheckpoint): { json: string; tensors: Uint8Array } {
  const index: Record<string, { dtype: ArrayDtype; shape: number[] }> = {};
  const arrays: [string, SerializableTensor][] = [];
  const put = (key: string, a: Float32Array | Uint32Array, shape: readonly number[] = [a.length]) => {
    if (key in index) throw new Error(`encodeCheckpoint: array '${key}' appears twice`);
    const u32 = a instanceof Uint32Array;
    index[key] = { dtype: u32 ? 'u32' : 'f32', shape: [...shape] };
    arrays.push([key, u32 ? { dtype: 'I32', shape, data: new Int32Array(a.buffer, a.byteOffset, a.length) } : { dtype: 'F32', shape, data: a }]);
  };
  for (const [name, t] of c.weights) put(PREFIX.weights + name, t.data, t.shape);
  for (const [name, a] of c.running) put(PREFIX.running + name, a);
  const { kind, step, lengths, groups, slots, extra = {} } = c.optimizer;
  for (const [name, a] of Object.entries(slots)) put(PREFIX.slot + name, a);
  const strings: Record<string, string> = {};
  for (const [key, v] of Object.entries(extra)) {
    if (typeof v === 'string') strings[key] = v;
    else put(PREFIX.extra + key, v);
  }
  const state = {
    format: c.format,
    step: c.step,
    stream: c.stream,
    run: c.run,
    lossCurve: c.lossCurve,
    evalCurve: c.evalCurve,
    masks: c.masks,
    trainSec: c.trainSec,
    recent: c.recent,
    recentCount: c.recentCount,
    base: c.base,
    optimizer: { kind, step, lengths, groups: groups.map((g) => ({ lr: g.lr, weightDecay: g.weightDecay })), strings },
    tensors: index,
  };
  const json = JSON.stringify(state);
  // what JSON cannot carry (NaN, Infinity) would come back as null: refuse it here, not at resume
  const parsed = stateSchema.safeParse(JSON.parse(json));
  if (!parsed.success) throw new Error(`encodeCheckpoint: ${issues(parsed.error)}`);
  return { json: `${json}\n`, tensors: serializeSafetensors(arrays, { format: 'keel-tune-checkpoint', version: String(CHECKPOINT_FORMAT) }) };
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(state)'}: ${i.message}`).join('; ');
}

/** Inverse of encodeCheckpoint; `source` (a directory or URL) prefixes the file names in errors. */
export function decodeCheckpoint(json: string, tensors: Uint8Array, source: string): TuneCheckpoint {
  const jsonFile = `${source}/${CHECKPOINT_STATE_FILE}`;
  const tensorFile = `${source}/${CHECKPOINT_TENSORS_FILE}`;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    throw new Error(`${jsonFile}: not valid JSON (${(e as Error).message})`);
  }
  const format = typeof raw === 'object' && raw !== null ? (raw as { format?: unknown }).format : undefined;
  if (format !== CHECKPOINT_FORMAT) throw new Error(`${jsonFile}: checkpoint format ${JSON.stringify(format)} is not supported (this keel reads format ${CHECKPOINT_FORMAT})`);
  const parsed = stateSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${jsonFile}: ${issues(parsed.error)}`);
  const s = parsed.data;

  const file = parseSafetensors(tensors, tensorFile);
  const arrays = new Map<string, Float32Array | Uint32Array>();
  for (const [key, entry] of Object.entries(s.tensors)) {
    const t = file.tensors.get(key);
    if (!t) throw new Error(`${tensorFile}: tensor '${key}' is missing (${jsonFile} lists it)`);
    const dtype = entry.dtype === 'u32' ? 'I32' : 'F32';
    if (t.dtype !== dtype) throw new Error(`${tensorFile}: tensor '${key}' is ${t.dtype}, expected ${dtype}`);
    if (t.shape.join() !== entry.shape.join()) throw new Error(`${tensorFile}: tensor '${key}' has shape [${t.shape}], ${jsonFile} says [${entry.shape}]`);
    arrays.set(key, t.data instanceof Int32Array ? new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length) : (t.data as Float32Array));
  }
  const unlisted = [...file.tensors.keys()].filter((k) => !(k in s.tensors));
  if (unlisted.length) throw new Error(`${tensorFile}: tensor '${unlisted[0]}' is not listed in ${jsonFile}${unlisted.length > 1 ? ` (and ${unlisted.length - 1} more)` : ''}`);

  const weights = new Map<string, TensorState>();
  const running: RunningState = new Map();
  const slots: Record<string, Float32Array> = {};
  const extra: Record<string, Float32Array | Uint32Array | string> = { ...s.optimizer.strings };
  for (const [key, a] of arrays) {
    const f32 = (what: string) => {
      if (!(a instanceof Float32Array)) throw new Error(`${jsonFile}: tensors.${key}: ${what} must be f32`);
      return a;
    };
    if (key.startsWith(PREFIX.weights)) weights.set(key.slice(PREFIX.weights.length), { shape: s.tensors[key]!.shape, data: f32('a weight') });
    else if (key.startsWith(PREFIX.running)) running.set(key.slice(PREFIX.running.length), a);
    else if (key.startsWith(PREFIX.slot)) slots[key.slice(PREFIX.slot.length)] = f32('an optimizer slot');
    else if (key.startsWith(PREFIX.extra)) {
      const name = key.slice(PREFIX.extra.length);
      if (name in extra) throw new Error(`${jsonFile}: optimizer extra '${name}' is both a string and an array`);
      extra[name] = a;
    } else throw new Error(`${jsonFile}: tensors.${key}: the key must start with ${Object.values(PREFIX).map((p) => `'${p}'`).join(', ')}`);
  }
  const { kind, step, lengths, groups } = s.optimizer;
  const hasExtra = Object.keys(extra).length > 0;
  return {
    format: CHECKPOINT_FORMAT,
    step: s.step,
    stream: s.stream,
    run: s.run as TuneRunIdentity,
    lossCurve: s.lossCurve,
    evalCurve: s.evalCurve,
    masks: s.masks,
    trainSec: s.trainSec,
    recent: s.recent,
    recentCount: s.recentCount,
    base: s.base,
    weights,
    running,
    optimizer: { kind, step, lengths, groups, slots, ...(hasExtra ? { extra } : {}) },
  };
}
