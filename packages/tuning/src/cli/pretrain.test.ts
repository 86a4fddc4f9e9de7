/**
 * `keel pretrain --config` with sizes no model has (issue 8): the config file is rejected with exit
 * code 2, naming the file, the field and the limit, before a runtime is created or a model built.
 * `--checkpoint-every` / `--resume`: a resumed run (stage 1 included before the checkpoint) ends bit
 * for bit where the uninterrupted one does, and each way a resume cannot work exits 2 saying why.
 * `--init` / `--kinds` / `--freeze` (continued pre-training): the run starts from the directory's weights with its
 * config and architecture, the card and metrics.json keep the init's own command, and every way the
 * flags cannot work exits 2 naming the flag.
 */
import { getRuntime } from '@keel/kernels';
import { archConfig, encodePretrainCheckpoint, loadModelFiles, pretrain } from '@keel/mllm';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { writeCheckpointFiles } from '../protocol/checkpoint.node.js';
import { main } from './main.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keel-pretrain-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => vi.restoreAllMocks());

it.each([
  ['layers', { text: { layers: 1e9 } }, /text\.layers: 1000000000 layers exceed keel's limit of 1024/],
  ['width', { vision: { width: 1e9 } }, /vision\.width: width 1000000000 exceeds keel's limit of \d+/],
])('a config with an impossible %s exits 2 naming the field', async (_, config, message) => {
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify(config));
  const err: string[] = [];
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  const code = await main(['pretrain', '--config', file, '--steps', '1', '--batch', '1', '--eval', '1', '--out', join(dir, 'never')]);
  expect(code).toBe(2);
  expect(err.join('\n')).toMatch(/^keel: --config \S*config\.json: /);
  expect(err.join('\n')).toMatch(message);
});

describe('--checkpoint-every and --resume', () => {
  const tiny = { vision: { patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 16 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } };
  const flags = (out: string, file: string) => ['pretrain', '--config', file, '--steps', '4', '--vision-steps', '2', '--batch', '2', '--eval', '1', '--pool', '8', '--out', out];
  const quiet = () => {
    const err: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    return err;
  };
  const exists = (p: string) => stat(p).then(() => true, () => false);

  it('a run resumed from its checkpoint ends with the weights of the uninterrupted run; bad resumes exit 2', async () => {
    const file = join(dir, 'tiny.json');
    await writeFile(file, JSON.stringify(tiny));
    const whole = join(dir, 'whole');
    const err = quiet();
    expect(await main([...flags(whole, file), '--checkpoint-every', '2'])).toBe(0);
    expect(err.join('')).toMatch(/checkpoint \S*whole\/checkpoints\/checkpoint-2/);
    // a finished run removes its checkpoints and cannot be resumed
    expect(await exists(join(whole, 'checkpoints'))).toBe(false);
    expect(await main([...flags(whole, file), '--resume'])).toBe(2);
    expect(err.join('\n')).toMatch(/--resume: \S*metrics\.json exists, so that run finished/);

    // the interrupted run: its step-2 checkpoint, written the way the CLI writes it
    const cut = join(dir, 'cut');
    expect(await main([...flags(cut, file), '--resume'])).toBe(2);
    expect(err.join('\n')).toMatch(/--resume: no checkpoint to resume in \S*cut\/checkpoints/);
    const rt = await getRuntime();
    const stopped = await pretrain(rt, {
      steps: 4, visionSteps: 2, batchSize: 2, lr: 2e-3, seed: 0, evalCount: 1, pool: 8, config: archConfig('mlp', tiny), checkpointEvery: 2,
      onCheckpoint: async (c) => {
        if (c.step === 2) await writeCheckpointFiles(join(cut, 'checkpoints'), c.step, encodePretrainCheckpoint(c));
      },
    });
    stopped.model.dispose();
    expect(await main([...flags(cut, file), '--lr', '0.001', '--resume'])).toBe(2);
    expect(err.join('\n')).toMatch(/--resume: --lr is 0\.001 but the checkpoint's run \(\S*checkpoint-2\) used 0\.002/);
    expect(await main([...flags(cut, file), '--vision-steps', '1', '--resume'])).toBe(2);
    expect(err.join('\n')).toMatch(/--resume: --vision-steps is 1 but the checkpoint's run \(\S*checkpoint-2\) used 2/);
    expect(await main([...flags(cut, file), '--resume'])).toBe(0);
    expect(err.join('')).toMatch(/resuming from \S*checkpoint-2 \(step 2 of 4\)/);
    const metrics = JSON.parse(await readFile(join(cut, 'metrics.json'), 'utf8'));
    expect(metrics.resumedFrom).toBe(2);
    // stage 1 ran before the checkpoint; the resumed run carries its record on
    expect(metrics.visionSteps).toBe(2);
    expect(metrics.visionLossCurve).toEqual(JSON.parse(await readFile(join(whole, 'metrics.json'), 'utf8')).visionLossCurve);
    expect(metrics.visionLossCurve.map(([step]: [number, number]) => step)).toEqual([2]);
    expect(await readFile(join(cut, 'README.md'), 'utf8')).toMatch(/Stage 1, the vision tower alone: 2 steps × 2 fresh scenes/);
    expect(Buffer.compare(await readFile(join(cut, 'model.safetensors')), await readFile(join(whole, 'model.safetensors')))).toBe(0);
    expect(await exists(join(cut, 'checkpoints'))).toBe(false);
  });
});

describe('--init and --kinds', () => {
  const tiny = { vision: { patchSize: 8, width: 16, layers: 1, heads: 2, intermediate: 16 }, text: { width: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 16 } };
  const small = ['--steps', '2', '--batch', '2', '--eval', '1', '--pool', '10'];

  it('continues from a model directory, keeps its recipe on record, and refuses what cannot work', async () => {
    const err: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    const file = join(dir, 'tiny-init.json');
    await writeFile(file, JSON.stringify(tiny));
    const first = join(dir, 'first');
    expect(await main(['pretrain', '--arch', 'resampler', '--config', file, ...small, '--vision-steps', '1', '--out', first])).toBe(0);
    const made = JSON.parse(await readFile(join(first, 'metrics.json'), 'utf8'));

    const next = join(dir, 'next');
    expect(await main(['pretrain', '--init', first, ...small, '--kinds', 'vqa.exist=3', '--out', next])).toBe(0);
    const metrics = JSON.parse(await readFile(join(next, 'metrics.json'), 'utf8'));
    // the architecture and config come from the directory; stage 1 is skipped
    expect(metrics.arch).toBe('resampler');
    expect(metrics.visionSteps).toBe(0);
    expect(metrics.command).toMatch(/^keel pretrain --arch resampler --steps 2 --vision-steps 0 .* --kinds vqa\.exist=3 --init \S*first$/);
    expect(metrics.kindWeights).toEqual({ 'vqa.exist': 3 });
    expect(metrics.init).toMatchObject({ from: first, command: made.command, seconds: made.seconds });
    expect(metrics.init.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(JSON.parse(await readFile(join(next, 'config.json'), 'utf8'))).toEqual(JSON.parse(await readFile(join(first, 'config.json'), 'utf8')));
    const card = await readFile(join(next, 'README.md'), 'utf8');
    expect(card).toContain(`the run starts from the weights of \`${first}\`, which were pre-trained by \`${made.command}\``);
    expect(card).toContain('vqa.exist questions are drawn 3× as often as the other types');
    expect(card).toMatch(/Continued training, the whole model on the general suite: 2 steps × 2 examples/);

    // --arch other than the directory's: a connector swap onto an mlp connector
    const swapped = join(dir, 'swapped');
    expect(await main(['pretrain', '--init', first, '--arch', 'mlp', ...small, '--out', swapped])).toBe(0);
    const swapMetrics = JSON.parse(await readFile(join(swapped, 'metrics.json'), 'utf8'));
    expect(swapMetrics.arch).toBe('mlp');
    expect(swapMetrics.init.connectorSwap).toEqual({ from: 'resampler', fresh: 'multi_modal_projector.' });
    const swappedConfig = JSON.parse(await readFile(join(swapped, 'config.json'), 'utf8'));
    const firstConfig = JSON.parse(await readFile(join(first, 'config.json'), 'utf8'));
    expect(swappedConfig.projector_type ?? 'mlp').toBe('mlp');
    expect(swappedConfig.text_config).toEqual(firstConfig.text_config);
    expect(swappedConfig.vision_config).toEqual(firstConfig.vision_config);
    expect(await readFile(join(swapped, 'README.md'), 'utf8')).toContain('Connector swap: its vision tower and language model are taken, its resampler connector is not');

    // --freeze: stage 2 leaves the vision tower alone; on record in the command, metrics.json and the card
    const frozen = join(dir, 'frozen');
    expect(await main(['pretrain', '--init', first, ...small, '--freeze', 'vision_tower.**', '--out', frozen])).toBe(0);
    const frozenMetrics = JSON.parse(await readFile(join(frozen, 'metrics.json'), 'utf8'));
    expect(frozenMetrics.freeze).toEqual(['vision_tower.**']);
    expect(frozenMetrics.command).toMatch(/ --init \S*first --freeze vision_tower\.\*\*$/);
    expect(await readFile(join(frozen, 'README.md'), 'utf8')).toMatch(/Continued training, the model except `vision_tower\.\*\*` \(frozen\) on the general suite: 2 steps/);
    const weightsOf = async (d: string) => (await loadModelFiles(d)).tensors;
    const [before, after] = [await weightsOf(first), await weightsOf(frozen)];
    for (const [name, t] of after) if (name.startsWith('vision_tower.')) expect(t.data, name).toEqual(before.get(name)!.data);

    const refuse = async (args: string[], message: RegExp) => {
      err.length = 0;
      expect(await main(['pretrain', ...small, '--out', join(dir, 'never'), ...args])).toBe(2);
      expect(err.join('\n')).toMatch(message);
    };
    await refuse(['--init', first, '--config', file], /--config cannot be combined with --init: the model's config comes from \S*first/);
    await refuse(['--init', join(dir, 'nowhere')], /--init: \S*nowhere: model directory does not exist/);
    await refuse(['--kinds', 'exist=3'], /expected task\.kind=weight pairs .* got 'exist=3'/);
    await refuse(['--kinds', 'mnist.digit=3'], /'mnist' is not a general task/);
    await refuse(['--kinds', 'vqa.exist=0'], /weights > 0/);
    await refuse(['--init', first, '--freeze', 'vision_tower.**,vison_tower.**'], /--freeze: 'vison_tower\.\*\*' names no parameter of the resampler model/);
    await refuse(['--freeze', 'vision tower'], /expected parameter-name globs separated by commas, e\.g\. vision_tower\.\*\*; got 'vision tower'/);
    // a tokenizer other than the general suite's vocabulary cannot be trained on it
    const alien = join(dir, 'alien');
    expect(await main(['pretrain', '--init', first, ...small, '--steps', '1', '--out', alien])).toBe(0);
    const tok = JSON.parse(await readFile(join(alien, 'tokenizer.json'), 'utf8'));
    const vocab = tok.model.vocab as Record<string, number>;
    const word = Object.keys(vocab).find((w) => /^[a-z]+$/.test(w))!;
    vocab[`${word}x`] = vocab[word]!;
    delete vocab[word];
    await writeFile(join(alien, 'tokenizer.json'), JSON.stringify(tok));
    await refuse(['--init', alien], /--init \S*alien: its tokenizer\.json is not the general suite's word vocabulary/);
  });
});
