import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from './main.js';

/**
 * Captures the CLI's output; `crashAfter(step)` makes the JSON line of that checkpoint event throw,
 * which stops `keel tune` right after the checkpoint is on disk, like a process killed there.
 */
function capture(crashAfter?: number) {
  const out: string[] = [];
  const err: string[] = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    const line = a.join(' ');
    out.push(line);
    if (crashAfter !== undefined && line.includes('"event":"checkpoint"') && JSON.parse(line).step === crashAfter) throw new Error(`simulated crash after the step-${crashAfter} checkpoint`);
  });
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true));
  return { out, err, last: () => err.join('').split('keel: ').at(-1) ?? '' };
}

afterEach(() => vi.restoreAllMocks());

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'keel-cli-resume-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const tuneArgs = (out: string, steps = 6) => ['tune', '--strategy', 'lora', '--task', 'count', '--steps', String(steps), '--batch', '2', '--eval', '1', '--checkpoint-every', '2', '--out', out, '--json'];
const metricsOf = async (out: string) => JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'));

describe('keel tune --checkpoint-every / --resume', () => {
  it('a run crashed after its step-4 checkpoint, resumed, ends as the uninterrupted run; flag changes are refused', async () => {
    const whole = join(dir, 'whole');
    capture();
    expect(await main(tuneArgs(whole))).toBe(0);
    const expected = await metricsOf(whole);
    expect(expected.resumedFrom).toBeNull();
    expect(await readdir(join(whole, 'checkpoints'))).toEqual(['checkpoint-6', 'latest']);

    const broken = join(dir, 'broken');
    let io = capture(4);
    expect(await main(tuneArgs(broken))).toBe(1);
    expect(io.last()).toMatch(/simulated crash after the step-4 checkpoint/);
    expect((await readdir(broken)).sort()).toEqual(['checkpoints']);
    expect(await readFile(join(broken, 'checkpoints', 'latest'), 'utf8')).toBe('checkpoint-4\n');

    io = capture();
    expect(await main([...tuneArgs(broken, 8), '--resume'])).toBe(2);
    expect(io.last()).toMatch(/--resume: --steps is 8 but the checkpoint's run \(.*checkpoint-4\) used 6/);
    expect(await main([...tuneArgs(broken), '--lr', '0.5', '--resume'])).toBe(2);
    expect(io.last()).toMatch(/--resume: --lr is 0\.5 but/);

    io = capture();
    expect(await main([...tuneArgs(broken), '--resume'])).toBe(0);
    const events = io.out.map((l) => JSON.parse(l) as { event: string; step?: number });
    expect(events[0]).toMatchObject({ event: 'resume', step: 4 });
    expect(events.filter((e) => e.event === 'checkpoint').map((e) => e.step)).toEqual([6]);
    const resumed = await metricsOf(broken);
    expect(resumed.resumedFrom).toBe(4);
    expect(resumed.lossCurve).toEqual(expected.lossCurve); // one mean over steps 1–6, half of it from the checkpoint
    expect(resumed.final).toEqual(expected.final);
    expect(await readFile(join(broken, 'adapter_model.safetensors'))).toEqual(await readFile(join(whole, 'adapter_model.safetensors')));

    // a completed run is not resumed; with its outputs deleted, --resume redoes the end from step 6
    expect(await main([...tuneArgs(whole), '--resume'])).toBe(2);
    expect(io.last()).toMatch(/--resume: .*whole\/metrics\.json exists, so that run completed/);
    await rm(join(whole, 'metrics.json'));
    expect(await main([...tuneArgs(whole), '--resume'])).toBe(0);
    const redone = await metricsOf(whole);
    expect(redone.resumedFrom).toBe(6);
    expect(redone.lossCurve).toEqual(expected.lossCurve);
    expect(redone.final).toEqual(expected.final);
  });

  it('--resume without a checkpoint exits 2 naming where it looked', async () => {
    const io = capture();
    const out = join(dir, 'none');
    expect(await main([...tuneArgs(out), '--resume'])).toBe(2);
    expect(io.last()).toMatch(/--resume: no checkpoint to resume in .*none\/checkpoints \(.*none\/checkpoints\/latest does not exist\)/);
  });

  it('a non-finite loss exits 1 naming the step and the last good checkpoint', async () => {
    const io = capture();
    const out = join(dir, 'nan');
    expect(await main(['tune', '--strategy', 'full', '--task', 'count', '--steps', '6', '--batch', '2', '--eval', '1', '--lr', '1e38', '--checkpoint-every', '1', '--out', out, '--json'])).toBe(1);
    const m = /the loss became (?:NaN|-?Infinity) at step (\d+) .*; the last good checkpoint is (\S+)$/.exec(io.last().trim());
    expect(m, io.last()).not.toBeNull();
    const step = Number(m![1]);
    expect(m![2]).toBe(join(out, 'checkpoints', `checkpoint-${step - 1}`));
    expect(await readdir(join(out, 'checkpoints'))).toEqual([`checkpoint-${step - 1}`, 'latest']);
  });
});
