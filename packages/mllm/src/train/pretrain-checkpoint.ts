/**
 * A resumable pre-training checkpoint (pretrain.ts PretrainCheckpoint) as files, browser-safe; the
 * CLI puts them in a directory. The directory is also a model directory that loadModel reads, so a
 * long run can be evaluated or tried out while it continues:
 *   config.json, model.safetensors, tokenizer.json   the weights at `step` (io/model-files.ts)
 *   optimizer.safetensors                            AdamW's slots ('slot.<name>', F32)
 *   trainer_state.json                               step, stream state, run identity, curves of
 *                                                    both stages, training seconds, the optimizer's
 *                                                    scalars
 * Decoding checks the format version and kind, every JSON field, that the optimizer file holds
 * exactly the slots and nothing else, and the weights as loadModel would; every error names the file.
 *
 * Non-goals: optimizers with extra state (pre-training uses plain AdamW), other formats than this one.
 */
import type { OptimizerState } from '@keel/autograd';
import { z } from 'zod';
import { ModelFilesError, encodeModelFiles, parseModelFiles, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE } from '../io/model-files.js';
import { parseSafetensors, serializeSafetensors, type SerializableTensor } from '../io/safetensors.js';
import { resolveConfig, type MllmConfig } from '../config.js';
import type { PretrainCheckpoint } from './pretrain.js';

export const PRETRAIN_CHECKPOINT_FORMAT = 1;
export const PRETRAIN_STATE_FILE = 'trainer_state.json';
export const PRETRAIN_OPTIMIZER_FILE = 'optimizer.safetensors';
const KIND = 'keel-pretrain-checkpoint';
/** Every file a checkpoint consists of. */
export const PRETRAIN_CHECKPOINT_FILES = [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE, PRETRAIN_OPTIMIZER_FILE, PRETRAIN_STATE_FILE] as const;

const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const count = z.number().int().nonnegative();
const stateSchema = z
  .object({
    format: z.literal(PRETRAIN_CHECKPOINT_FORMAT),
    kind: z.literal(KIND),
    step: z.number().int().positive(),
    stream: z.number().int().min(0).max(0xffffffff),
    run: z
      .object({
        seed: count,
        steps: z.number().int().positive(),
        // checkpoints written before stage 1 existed: their runs had none
        visionSteps: count.default(0),
        batchSize: z.number().int().positive(),
        lr: finite,
        warmup: count,
        pool: z.number().int().positive(),
        progressEvery: z.number().int().positive(),
        mix: z.record(z.string(), finite),
        config: z.record(z.string(), z.unknown()),
        // checkpoints written before continued pre-training and question-type weights existed
        kindWeights: z.record(z.string(), finite).default({}),
        init: z.string().nullable().default(null),
        // ... and before stage 2 could freeze parameters
        freeze: z.array(z.string()).default([]),
      })
      .strict(),
    lossCurve: z.array(z.tuple([count, finite])),
    trainSec: finite,
    visionLossCurve: z.array(z.tuple([count, finite])).default([]),
    visionSec: finite.default(0),
    recent: finite,
    recentCount: count,
    optimizer: z
      .object({
        kind: z.string(),
        step: count,
        lengths: z.array(count),
        groups: z.array(z.object({ lr: finite, weightDecay: finite }).strict()),
        slots: z.array(z.string()),
      })
      .strict(),
  })
  .strict();

/** The checkpoint's files (strings are UTF-8 text). */
export function encodePretrainCheckpoint(c: PretrainCheckpoint): Map<string, Uint8Array | string> {
  const { kind, step, lengths, groups, slots, extra } = c.optimizer;
  if (extra && Object.keys(extra).length) throw new Error(`encodePretrainCheckpoint: optimizer ${kind} has extra state (${Object.keys(extra).join(', ')}), which a pre-training checkpoint does not hold`);
  const config: MllmConfig = resolveConfig(c.run.config as MllmConfig, 'encodePretrainCheckpoint: run.config');
  const files = encodeModelFiles({ config, tensors: c.weights, tokenizer: c.tokenizer });
  const arrays: [string, SerializableTensor][] = Object.entries(slots).map(([name, a]) => [`slot.${name}`, { dtype: 'F32', shape: [a.length], data: a }]);
  files.set(PRETRAIN_OPTIMIZER_FILE, serializeSafetensors(arrays, { format: KIND, version: String(PRETRAIN_CHECKPOINT_FORMAT) }));
  const state = {
    format: PRETRAIN_CHECKPOINT_FORMAT,
    kind: KIND,
    step: c.step,
    stream: c.stream,
    run: c.run,
    lossCurve: c.lossCurve,
    trainSec: c.trainSec,
    visionLossCurve: c.visionLossCurve,
    visionSec: c.visionSec,
    recent: c.recent,
    recentCount: c.recentCount,
    optimizer: { kind, step, lengths, groups: groups.map((g) => ({ lr: g.lr, weightDecay: g.weightDecay })), slots: Object.keys(slots) },
  };
  const json = JSON.stringify(state);
  // what JSON cannot carry (NaN, Infinity) would come back as null: refuse it now, not at resume
  const parsed = stateSchema.safeParse(JSON.parse(json));
  if (!parsed.success) throw new Error(`encodePretrainCheckpoint: ${issues(parsed.error)}`);
  files.set(PRETRAIN_STATE_FILE, `${json}\n`);
  return files;
}

function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(state)'}: ${i.message}`).join('; ');
}

/** Inverse of encodePretrainCheckpoint; `source` (a directory or URL) prefixes the file names in errors. */
export function decodePretrainCheckpoint(files: ReadonlyMap<string, Uint8Array | string>, source: string): PretrainCheckpoint {
  const where = (file: string) => `${source}/${file}`;
  const text = (file: string): string => {
    const v = files.get(file);
    if (v === undefined) throw new Error(`${where(file)}: missing (a pre-training checkpoint has ${PRETRAIN_CHECKPOINT_FILES.join(', ')})`);
    return typeof v === 'string' ? v : new TextDecoder().decode(v);
  };
  const bytes = (file: string): Uint8Array => {
    const v = files.get(file);
    if (v === undefined) throw new Error(`${where(file)}: missing (a pre-training checkpoint has ${PRETRAIN_CHECKPOINT_FILES.join(', ')})`);
    return typeof v === 'string' ? new TextEncoder().encode(v) : v;
  };

  let raw: unknown;
  try {
    raw = JSON.parse(text(PRETRAIN_STATE_FILE));
  } catch (e) {
    throw new Error(`${where(PRETRAIN_STATE_FILE)}: not valid JSON (${(e as Error).message})`);
  }
  const head = typeof raw === 'object' && raw !== null ? (raw as { format?: unknown; kind?: unknown }) : {};
  if (head.kind !== KIND) throw new Error(`${where(PRETRAIN_STATE_FILE)}: not a pre-training checkpoint (kind ${JSON.stringify(head.kind)}, expected '${KIND}')`);
  if (head.format !== PRETRAIN_CHECKPOINT_FORMAT) throw new Error(`${where(PRETRAIN_STATE_FILE)}: checkpoint format ${JSON.stringify(head.format)} is not supported (this keel reads format ${PRETRAIN_CHECKPOINT_FORMAT})`);
  const parsed = stateSchema.safeParse(raw);
  if (!parsed.success) throw new Error(`${where(PRETRAIN_STATE_FILE)}: ${issues(parsed.error)}`);
  const s = parsed.data;

  let model;
  try {
    model = parseModelFiles({ configJson: text(CONFIG_FILE), safetensors: bytes(WEIGHTS_FILE), tokenizerJson: text(TOKENIZER_FILE) }, source);
  } catch (e) {
    throw e instanceof ModelFilesError ? new Error(e.message, { cause: e }) : e;
  }
  if (model.unused.length) throw new Error(`${where(WEIGHTS_FILE)}: tensor ${model.unused[0]} is not a parameter of the checkpoint's model`);

  const optFile = where(PRETRAIN_OPTIMIZER_FILE);
  const opt = parseSafetensors(bytes(PRETRAIN_OPTIMIZER_FILE), optFile);
  const slots: Record<string, Float32Array> = {};
  for (const name of s.optimizer.slots) {
    const t = opt.tensors.get(`slot.${name}`);
    if (!t) throw new Error(`${optFile}: tensor 'slot.${name}' is missing (${where(PRETRAIN_STATE_FILE)} lists slot '${name}')`);
    if (!(t.data instanceof Float32Array) || t.dtype !== 'F32') throw new Error(`${optFile}: tensor 'slot.${name}' is ${t.dtype}, expected F32`);
    slots[name] = t.data;
  }
  const unlisted = [...opt.tensors.keys()].filter((k) => !s.optimizer.slots.some((n) => k === `slot.${n}`));
  if (unlisted.length) throw new Error(`${optFile}: tensor '${unlisted[0]}' is not a slot listed in ${where(PRETRAIN_STATE_FILE)}`);

  const optimizer: OptimizerState = { kind: s.optimizer.kind, step: s.optimizer.step, lengths: s.optimizer.lengths, groups: s.optimizer.groups, slots };
  return {
    step: s.step,
    stream: s.stream,
    run: s.run,
    lossCurve: s.lossCurve,
    trainSec: s.trainSec,
    visionLossCurve: s.visionLossCurve,
    visionSec: s.visionSec,
    recent: s.recent,
    recentCount: s.recentCount,
    weights: new Map([...model.tensors].map(([name, t]) => [name, { shape: t.shape, data: t.data }])),
    tokenizer: model.tokenizer!, // text(TOKENIZER_FILE) above throws when it is missing
    optimizer,
  };
}
