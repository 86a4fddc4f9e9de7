/**
 * `keel pretrain`: trains the base model on the general suite and writes the checkpoint directory
 * (config.json, model.safetensors, tokenizer.json, metrics.json and a README model card).
 *
 * The model config, lowest precedence first: the schema defaults, the `--arch` preset (@keel/mllm
 * arch.ts, default mlp), then the `--config FILE` overrides merged on top key by key (a nested
 * object merges, a number or string replaces). The file may not switch the connector family: a
 * `projector.type` other than --arch's is an error asking for --arch instead, since the preset's
 * connector sizes would not fit the other family. The recorded command line names --arch.
 *
 * Two stages (@keel/mllm pretrain.ts): --vision-steps of dense scene parsing by the vision tower
 * alone, then --steps of the whole model on the general suite; progress lines name stage 1.
 *
 * Checkpoints (stage 2): every --checkpoint-every steps (default steps/10, at most 500 apart; 0 turns them
 * off) the run's state goes to <out>/checkpoints (checkpoint.node.ts: atomic, newest kept). Each is
 * also a model directory, so `keel eval --model <out>/checkpoints/checkpoint-N` scores a run that is
 * still going. `--resume` continues from <out>/checkpoints/latest and reproduces the uninterrupted
 * run; it exits 2 when there is no checkpoint, when the run finished already (<out>/metrics.json
 * exists), or when a flag that defines the run differs from the checkpoint's (naming the flag).
 * A finished run removes its checkpoints.
 *
 * Continued pre-training: `--init DIR` starts stage 2 from a model directory's weights (its config
 * and architecture come with it, so --config is refused; stage 1 is skipped unless --vision-steps
 * asks for it). With an --arch other than the directory's it is a connector swap: the vision tower
 * and language model come from DIR, the --arch preset's connector starts fresh (from --seed).
 * `--kinds vqa.exist=3` draws a question type that many times as often within its task.
 * `--freeze vision_tower.**` keeps parameters (name globs) as stage 2 finds them. The card
 * and metrics.json name the init and its own command, so the whole recipe stays on record.
 */
import { matchesName } from '@keel/autograd';
import { getRuntime } from '@keel/kernels';
import { join } from 'node:path';
import {
  ARCH_NAMES,
  ARCHITECTURES,
  ConfigError,
  ModelFilesError,
  SafetensorsError,
  WEIGHTS_FILE,
  WordTokenizer,
  loadModelFiles,
  vocabularyWords,
  DOWNSTREAM_TASKS,
  GENERAL_TASKS,
  PRETRAIN_CHECKPOINT_FILES,
  archConfig,
  decodePretrainCheckpoint,
  encodePretrainCheckpoint,
  isArchName,
  resolveConfig,
  llavaParameterShapes,
  mllmConfigSchema,
  modelCard,
  pretrain,
  pretrainRunDifference,
  pretrainRunIdentity,
  saveModel,
  type ArchName,
  type MllmConfigInput,
  type PretrainCheckpoint,
  type PretrainInit,
  type PretrainOptions,
  type PretrainProgress,
  type PretrainRunIdentity,
} from '@keel/mllm';
import { InvalidArgumentError, type Command } from 'commander';
import { latestCheckpoint, readCheckpointFiles, writeCheckpointFiles } from '../protocol/checkpoint.node.js';
import { UsageError, positiveInt, positiveNumber } from './args.js';

interface PretrainFlags {
  arch: ArchName;
  out: string;
  steps: number;
  visionSteps?: number;
  batch: number;
  lr: number;
  seed: number;
  eval: number;
  pool?: number;
  config?: string;
  mix?: Record<string, number>;
  json?: boolean;
  checkpointEvery?: number;
  resume?: boolean;
  kinds?: Record<string, number>;
  init?: string;
  freeze?: string[];
}

/** The flag behind each field of a pre-training run's identity (PretrainRunIdentity). */
const IDENTITY_FLAGS: Record<keyof PretrainRunIdentity, string> = {
  seed: '--seed',
  steps: '--steps',
  visionSteps: '--vision-steps',
  batchSize: '--batch',
  lr: '--lr',
  warmup: '--steps',
  pool: '--pool',
  progressEvery: '(the progress interval)',
  mix: '--mix',
  config: '--arch/--config',
  kindWeights: '--kinds',
  init: '--init',
  freeze: '--freeze',
};

/** The checkpoint --resume continues; every way it cannot is a UsageError (exit 2) saying why. */
async function checkpointToResume(out: string, dir: string): Promise<{ checkpoint: PretrainCheckpoint; path: string }> {
  const { stat } = await import('node:fs/promises');
  if (await stat(join(out, 'metrics.json')).then(() => true, () => false)) {
    throw new UsageError(`--resume: ${join(out, 'metrics.json')} exists, so that run finished; drop --resume to start again`);
  }
  let path: string | null;
  try {
    path = await latestCheckpoint(dir);
  } catch (e) {
    throw new UsageError(`--resume: ${(e as Error).message}`);
  }
  if (!path) throw new UsageError(`--resume: no checkpoint to resume in ${dir} (${join(dir, 'latest')} does not exist); run without --resume to start`);
  try {
    const { files } = await readCheckpointFiles(dir, PRETRAIN_CHECKPOINT_FILES);
    return { checkpoint: decodePretrainCheckpoint(files, path), path };
  } catch (e) {
    throw new UsageError(`--resume: ${(e as Error).message}`);
  }
}

/** `caption=0.3,vqa=0.55,text=0.15` → weights; names are checked against the general suite. */
function parseMix(v: string): Record<string, number> {
  const mix: Record<string, number> = {};
  for (const part of v.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*([0-9.eE+-]+)\s*$/.exec(part);
    const w = m ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(w) || w < 0) throw new InvalidArgumentError(`expected task=weight pairs separated by commas (weights ≥ 0), got '${part}'`);
    if (!GENERAL_TASKS.includes(m[1]!)) throw new InvalidArgumentError(`'${m[1]}' is not a general task (general: ${GENERAL_TASKS.join(', ')})`);
    mix[m[1]!] = w;
  }
  return mix;
}

/** `vision_tower.**,language_model.model.embed_tokens.*` → name globs (checked against the model in the action). */
function parseFreeze(v: string): string[] {
  const globs = v.split(',').map((g) => g.trim());
  if (globs.some((g) => !/^[A-Za-z0-9_.*]+$/.test(g))) throw new InvalidArgumentError(`expected parameter-name globs separated by commas, e.g. vision_tower.**; got '${v}'`);
  return globs;
}

/** `vqa.exist=3,caption.two-objects=2` → question-type weights; tasks are checked here, kinds by pretrain against the pools. */
function parseKinds(v: string): Record<string, number> {
  const kinds: Record<string, number> = {};
  for (const part of v.split(',')) {
    const m = /^\s*([a-z]+)\.([a-z-]+)\s*=\s*([0-9.eE+-]+)\s*$/.exec(part);
    const w = m ? Number(m[3]) : NaN;
    if (!m || !Number.isFinite(w) || w <= 0) throw new InvalidArgumentError(`expected task.kind=weight pairs separated by commas (weights > 0), e.g. vqa.exist=3; got '${part}'`);
    if (!GENERAL_TASKS.includes(m[1]!)) throw new InvalidArgumentError(`'${m[1]}' is not a general task (general: ${GENERAL_TASKS.join(', ')})`);
    kinds[`${m[1]}.${m[2]}`] = w;
  }
  return kinds;
}

/** Parameters of the vision-language connector (both families), fresh in a connector swap. */
const CONNECTOR_PREFIX = 'multi_modal_projector.';

/** What --init starts from: the directory's weights and config, their digest, and the directory's own recipe. */
interface InitSource {
  init: PretrainInit;
  config: MllmConfigInput;
  arch: ArchName;
  /** A connector swap: the directory's own architecture (its connector is not used). */
  swappedFrom?: ArchName;
  /** The command and seconds of the run that made the weights (its metrics.json), when recorded. */
  made: { command?: string; seconds?: number };
}

async function readInit(dir: string): Promise<InitSource> {
  const { readFile } = await import('node:fs/promises');
  const { createHash } = await import('node:crypto');
  let files;
  try {
    files = await loadModelFiles(dir);
  } catch (e) {
    if (e instanceof ModelFilesError || e instanceof SafetensorsError || e instanceof ConfigError) throw new UsageError(`--init: ${(e as Error).message}`);
    throw e;
  }
  const expected = WordTokenizer.fromWords(vocabularyWords()).toJSON();
  if (JSON.stringify(files.tokenizer) !== JSON.stringify(expected)) {
    throw new UsageError(`--init ${dir}: its tokenizer.json is not the general suite's word vocabulary, so pre-training cannot continue from it`);
  }
  const digest = `sha256:${createHash('sha256').update(await readFile(join(dir, WEIGHTS_FILE))).digest('hex')}`;
  let made: InitSource['made'] = {};
  try {
    const m = JSON.parse(await readFile(join(dir, 'metrics.json'), 'utf8')) as { command?: unknown; seconds?: unknown };
    made = {
      ...(typeof m.command === 'string' ? { command: m.command } : {}),
      ...(typeof m.seconds === 'number' ? { seconds: m.seconds } : {}),
    };
  } catch {
    // a model directory without keel's metrics.json (e.g. converted weights): its recipe is unknown
  }
  return { init: { weights: files.tensors, digest }, config: files.config as MllmConfigInput, arch: files.config.projector.type, made };
}

/** `--arch` value → preset name; anything else names the choices. */
export function parseArch(v: string): ArchName {
  if (!isArchName(v)) throw new InvalidArgumentError(`unknown architecture '${v}'; choose one of ${ARCH_NAMES.join(', ')}`);
  return v;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Reads a JSON file of model-config overrides and lays it over the `arch` preset (file comment);
 * the merged config is validated, so every error names the field and the file.
 */
async function readConfigOverrides(path: string, arch: ArchName): Promise<{ overrides: MllmConfigInput; config: MllmConfigInput }> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config ${path}: cannot read the file (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`--config ${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(json)) throw new UsageError(`--config ${path}: expected a JSON object of model-config overrides, got ${Array.isArray(json) ? 'an array' : JSON.stringify(json)}`);
  const type = isObject(json.projector) ? json.projector.type : undefined;
  if (type !== undefined && type !== arch) {
    throw new UsageError(`--config ${path}: projector.type ${JSON.stringify(type)} disagrees with --arch ${arch}; choose the connector family with --arch (${ARCH_NAMES.join(', ')})`);
  }
  const config = archConfig(arch, json as MllmConfigInput);
  const r = mllmConfigSchema.safeParse(config);
  if (!r.success) throw new UsageError(`--config ${path}: ${r.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`).join('; ')} (the file's overrides on the --arch ${arch} preset)`);
  return { overrides: json as MllmConfigInput, config };
}

function formatProgress(p: PretrainProgress): string {
  const eta = p.step > 0 ? (p.elapsedSec / p.step) * (p.steps - p.step) : 0;
  return `${p.stage === 'vision' ? 'stage 1 (vision) ' : ''}step ${p.step}/${p.steps}  loss ${p.loss.toFixed(4)}  ${p.samplesPerSec.toFixed(1)} samples/s  elapsed ${(p.elapsedSec / 60).toFixed(1)} min  eta ${(eta / 60).toFixed(1)} min`;
}

export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description('pre-train the base model on the general suite (captioning, VQA, text) and save it')
    .option('--arch <name>', `architecture preset: ${ARCH_NAMES.map((a) => `${a} (${ARCHITECTURES[a].description})`).join('; ')}`, parseArch, 'mlp' as ArchName)
    .option('--out <dir>', 'output directory', 'keel-base')
    .option('--steps <n>', 'optimizer steps of stage 2 (the whole model on the general suite)', (v) => positiveInt(v), 3000)
    .option('--vision-steps <n>', 'steps of stage 1, dense scene parsing by the vision tower alone (default steps/10; 0 skips it)', (v) => positiveInt(v, true))
    .option('--batch <n>', 'examples per step', (v) => positiveInt(v), 32)
    .option('--lr <x>', 'peak learning rate', positiveNumber, 2e-3)
    .option('--seed <n>', 'seed of data, init and batch order', (v) => positiveInt(v, true), 0)
    .option('--eval <n>', 'held-out examples scored per task', (v) => positiveInt(v), 300)
    .option('--pool <n>', 'training examples generated per image task (default 12000)', (v) => positiveInt(v))
    .option('--config <file>', 'JSON file of model-config overrides merged over the --arch preset, e.g. {"vision":{"width":96},"text":{"layers":4}}')
    .option('--mix <weights>', 'relative weight of each general task per batch (default caption=0.35,vqa=0.45,text=0.2)', parseMix)
    .option('--json', 'machine-readable output: JSON progress lines and a final JSON result')
    .option('--checkpoint-every <n>', 'write a resumable checkpoint to <out>/checkpoints every n steps (default steps/10, at most 500; 0: never)', (v) => positiveInt(v, true))
    .option('--resume', 'continue the run from <out>/checkpoints/latest (the same flags as the run that wrote it)')
    .option('--kinds <weights>', 'relative weight of question types within their task, e.g. vqa.exist=3 (default: every type 1)', parseKinds)
    .option('--init <dir>', 'continued pre-training: start stage 2 from this model directory (its config and architecture; stage 1 skipped unless --vision-steps); with another --arch, a connector swap (its vision tower and LLM, a fresh connector)')
    .option('--freeze <globs>', 'parameters stage 2 leaves as they are, comma-separated name globs, e.g. vision_tower.** (stage 1 still trains the vision tower)', parseFreeze)
    .action(async (f: PretrainFlags, cmd: Command) => {
      let init: InitSource | null = null;
      if (f.init) {
        if (f.config) throw new UsageError(`--config cannot be combined with --init: the model's config comes from ${f.init}`);
        init = await readInit(f.init);
        if (cmd.getOptionValueSource('arch') === 'cli' && f.arch !== init.arch) {
          // connector swap: the directory's vision tower and language model, a fresh connector of --arch
          const vision = (init.config as { vision: object }).vision;
          init.config = { ...init.config, projector: archConfig(f.arch, { vision }).projector } as MllmConfigInput;
          init.init = { ...init.init, fresh: [CONNECTOR_PREFIX] };
          init.swappedFrom = init.arch;
          init.arch = f.arch;
        }
        f.arch = init.arch;
      }
      const { overrides, config } = init
        ? { overrides: undefined, config: init.config }
        : f.config
          ? await readConfigOverrides(f.config, f.arch)
          : { overrides: undefined, config: archConfig(f.arch) };
      const names = [...llavaParameterShapes(resolveConfig(config)).keys()];
      const idle = (f.freeze ?? []).filter((glob) => !names.some((n) => matchesName(glob, n)));
      if (idle.length) throw new UsageError(`--freeze: ${idle.map((g) => `'${g}'`).join(', ')} names no parameter of the ${f.arch} model (globs over HF names, e.g. vision_tower.**, multi_modal_projector.**, language_model.**)`);
      const checkpointDir = join(f.out, 'checkpoints');
      const visionSteps = f.visionSteps ?? (init ? 0 : Math.round(f.steps / 10));
      const checkpointEvery = f.checkpointEvery ?? Math.min(500, Math.max(1, Math.floor(f.steps / 10)));
      const resume = f.resume ? await checkpointToResume(f.out, checkpointDir) : null;
      const rt = await getRuntime();
      const log = (s: string) => process.stderr.write(`${s}\n`);
      if (resume) log(`resuming from ${resume.path} (step ${resume.checkpoint.step} of ${resume.checkpoint.run.steps})`);
      const command = `keel pretrain --arch ${f.arch} --steps ${f.steps} --vision-steps ${visionSteps} --batch ${f.batch} --lr ${f.lr} --seed ${f.seed} --eval ${f.eval}${f.pool ? ` --pool ${f.pool}` : ''}${f.mix ? ` --mix ${Object.entries(f.mix).map(([k, w]) => `${k}=${w}`).join(',')}` : ''}${f.kinds ? ` --kinds ${Object.entries(f.kinds).map(([k, w]) => `${k}=${w}`).join(',')}` : ''}${overrides ? ` --config ${JSON.stringify(overrides)}` : ''}${f.init ? ` --init ${f.init}` : ''}${f.freeze ? ` --freeze ${f.freeze.join(',')}` : ''}`;
      try {
        const options: PretrainOptions = {
          steps: f.steps,
          visionSteps,
          batchSize: f.batch,
          lr: f.lr,
          seed: f.seed,
          evalCount: f.eval,
          ...(f.pool ? { pool: f.pool } : {}),
          config,
          ...(f.mix ? { mix: f.mix } : {}),
          ...(f.kinds ? { kindWeights: f.kinds } : {}),
          ...(init ? { init: init.init } : {}),
          ...(f.freeze ? { freeze: f.freeze } : {}),
          onProgress: (p) => (f.json ? console.log(JSON.stringify({ event: 'progress', ...p })) : log(formatProgress(p))),
          checkpointEvery,
          onCheckpoint: async (c) => {
            const path = await writeCheckpointFiles(checkpointDir, c.step, encodePretrainCheckpoint(c));
            if (f.json) console.log(JSON.stringify({ event: 'checkpoint', step: c.step, path }));
            else log(`checkpoint ${path}`);
          },
          ...(resume ? { resume: resume.checkpoint } : {}),
        };
        if (resume) {
          const d = pretrainRunDifference(resume.checkpoint.run, pretrainRunIdentity(options));
          if (d) {
            const flag = IDENTITY_FLAGS[d.field.split('.')[0] as keyof PretrainRunIdentity];
            throw new UsageError(`--resume: ${flag}${flag.startsWith('--') && d.field.includes('.') ? ` (${d.field})` : ''} is ${JSON.stringify(d.now)} but the checkpoint's run (${resume.path}) used ${JSON.stringify(d.saved)}; resume with that run's flags`);
          }
        }
        const r = await pretrain(rt, options);
        const metrics = {
          arch: f.arch,
          command,
          steps: f.steps,
          visionSteps,
          batchSize: f.batch,
          seconds: r.seconds,
          visionSeconds: r.visionSeconds,
          samplesPerSec: r.samplesPerSec,
          parameters: r.model.numParameters(),
          scores: r.scores,
          lossCurve: r.lossCurve,
          visionLossCurve: r.visionLossCurve,
          resumedFrom: r.resumedFrom,
          kindWeights: f.kinds ?? {},
          freeze: f.freeze ?? [],
          init: init ? { from: f.init, digest: init.init.digest, ...(init.swappedFrom ? { connectorSwap: { from: init.swappedFrom, fresh: CONNECTOR_PREFIX } } : {}), ...init.made } : null,
        };
        const context = {
          command,
          device: `${rt.info.adapter.description || rt.info.adapter.architecture} (${rt.info.adapter.vendor})`,
          date: new Date().toISOString().slice(0, 10),
          ...(init ? { init: { from: f.init!, ...(init.swappedFrom ? { swappedFrom: init.swappedFrom } : {}), ...init.made } } : {}),
        };
        const card = modelCard(r, context, GENERAL_TASKS, DOWNSTREAM_TASKS);
        await saveModel(f.out, r.model, r.tokenizer, { 'metrics.json': metrics, 'README.md': card });
        r.model.dispose();
        const { rm } = await import('node:fs/promises');
        await rm(checkpointDir, { recursive: true, force: true });
        if (f.json) console.log(JSON.stringify({ event: 'done', out: f.out, ...metrics }));
        else {
          log(`saved to ${f.out}`);
          for (const [task, acc] of Object.entries(r.scores)) log(`  ${task.padEnd(10)} ${(100 * acc).toFixed(1)} %`);
        }
      } finally {
        rt.destroy();
      }
    });
}
