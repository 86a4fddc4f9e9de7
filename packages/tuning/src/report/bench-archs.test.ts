/**
 * The bench report over several architectures (`bases`): one table and scatter per arch and task,
 * each row checked against its own arch's base, and the H-ranking comparison at the end.
 */
import { describe, expect, it } from 'vitest';
import { kendallTau, rankingAgreement } from '../protocol/ranking.js';
import { renderBenchReport, type BenchReportInput, type BenchRow } from './report.js';

type Base = { U: number; T: Record<string, number> };

function row(arch: string, strategy: string, task: string, T: number, U: number, base: Base): BenchRow {
  const E = T - base.T[task]!;
  const F = U - base.U;
  return { arch, strategy, task, T, U, H: (2 * T * U) / (T + U), E, F, O: E + F, trainable: 1000, trainable_pct: 1.5, extra_state_bytes: 0, peak_mb: 12, sec_per_step: 0.5, sec: 1 };
}

const MLP: Base = { U: 0.6, T: { mnist: 0.1, count: 0.2 } };
const RES: Base = { U: 0.5, T: { mnist: 0.15, count: 0.25 } };
const scores: Record<string, [number, number][]> = {
  // per strategy: (T, U) on mlp then resampler, for mnist
  full: [[0.9, 0.3], [0.85, 0.25]],
  lora: [[0.7, 0.55], [0.6, 0.5]],
  ia3: [[0.3, 0.6], [0.4, 0.45]],
};

function input(): BenchReportInput {
  const rows: BenchRow[] = [];
  for (const [arch, base, k] of [['mlp', MLP, 0], ['resampler', RES, 1]] as const) {
    for (const [s, tu] of Object.entries(scores)) rows.push(row(arch, s, 'mnist', tu[k]![0], tu[k]![1], base));
    rows.push(row(arch, 'full', 'count', 0.5, 0.5, base), row(arch, 'lora', 'count', 0.6, 0.55, base));
  }
  return { device: 'lavapipe', date: '2025-06-01', command: 'keel bench --arch all', base: MLP, bases: { mlp: MLP, resampler: RES }, rows };
}

describe('renderBenchReport with several architectures', () => {
  it('one table and scatter per arch and task, each against its own base, without an arch column', () => {
    const { markdown, html, charts } = renderBenchReport(input());
    expect(charts.map((c) => c.name)).toEqual(['scatter-mlp-mnist', 'scatter-mlp-count', 'scatter-resampler-mnist', 'scatter-resampler-count']);
    const headings = markdown.match(/^## .*$/gm)!;
    expect(headings.slice(0, 4)).toEqual(['## mlp · mnist: base T 10.0, U 60.0', '## mlp · count: base T 20.0, U 60.0', '## resampler · mnist: base T 15.0, U 50.0', '## resampler · count: base T 25.0, U 50.0']);
    expect(markdown).toContain('| strategy | T | U | H | E | F | O | trainable % | peak MB | s/step |');
    expect(markdown).toContain('Architectures: mlp, resampler');
    for (const c of charts) expect(html).toContain(c.svg);
    expect(charts[2]!.svg).toContain('resampler base');
  });

  it('ranks the strategies by H per arch and task and states whether the ranking holds', () => {
    const inp = input();
    const { markdown, html } = renderBenchReport(inp);
    const section = markdown.slice(markdown.indexOf('## Does the H ranking hold across architectures?'));
    expect(section.length).toBeGreaterThan(0);
    const H = (arch: string, s: string) => inp.rows.find((r) => r.arch === arch && r.strategy === s && r.task === 'mnist')!.H;
    const tau = kendallTau(['full', 'lora', 'ia3'].map((s) => H('mlp', s)), ['full', 'lora', 'ia3'].map((s) => H('resampler', s)))!;
    expect(section).toContain(`### mnist: tau(mlp, resampler) = ${tau.toFixed(2)}`);
    const best = (arch: string) => Object.keys(scores).sort((a, b) => H(arch, b) - H(arch, a))[0]!;
    expect(section).toMatch(new RegExp(`^\\| 1\\. ${best('mlp')} [0-9.]+ \\| 1\\. ${best('resampler')} [0-9.]+ \\|$`, 'm'));
    const verdict = rankingAgreement(inp.rows.map((r) => ({ arch: r.arch!, task: r.task, strategy: r.strategy, H: r.H }))).verdict;
    expect(section).toContain(`**${verdict}**`);
    expect(html).toContain(verdict);
  });

  it('one architecture: the per-task chart names and no comparison', () => {
    const inp = input();
    const { markdown, charts } = renderBenchReport({ ...inp, bases: { mlp: MLP }, rows: inp.rows.filter((r) => r.arch === 'mlp') });
    expect(charts.map((c) => c.name)).toEqual(['scatter-mnist', 'scatter-count']);
    expect(markdown).not.toContain('Does the H ranking hold');
    expect(markdown).toContain('## mlp · mnist: base T 10.0, U 60.0');
  });

  it("checks E and F against the row's own arch base and names a bad field", () => {
    const swapped = input();
    swapped.bases = { mlp: RES, resampler: MLP };
    expect(() => renderBenchReport(swapped)).toThrow(/rows\[0\]\.E is 0\.8 but T − T\(base\) gives 0\.75/);
    const stray = input();
    stray.rows = [...stray.rows, { ...stray.rows[0]!, arch: 'conv' }];
    expect(() => renderBenchReport(stray)).toThrow(/rows\[10\]\.arch must name one of bases \(mlp, resampler\), got "conv"/);
    const missing = input();
    missing.bases = { mlp: MLP, resampler: { U: 0.5, T: { mnist: 0.15 } } };
    expect(() => renderBenchReport(missing)).toThrow(/bases\.resampler\.T\.count is missing: rows\[8\] is on task 'count'/);
    expect(() => renderBenchReport({ ...input(), bases: {} })).toThrow(/bases must map at least one architecture/);
    const badLr = input();
    badLr.rows = [...badLr.rows, { ...badLr.rows[0]!, lr: 0 }];
    expect(() => renderBenchReport(badLr)).toThrow(/rows\[10\]\.lr must be a positive number, got 0/);
    const goodLr = input();
    goodLr.rows = goodLr.rows.map((r) => ({ ...r, lr: 3e-3 }));
    expect(() => renderBenchReport(goodLr)).not.toThrow();
  });
});
