/**
 * The reports of `keel tune` (one run) and `keel bench` (every method on every task), as data the
 * CLI writes (write.node.ts) and the browser example shows: a self-contained HTML page, the charts
 * as standalone SVG, and for the bench a markdown table to paste into an issue or the README.
 *
 * What a reader checks, in the survey's terms (protocol/scores.ts computes the numbers):
 *   T, U        target and upstream exact-match scores after tuning; the base model's beside them
 *   H           2·T·U / (T + U), high only when both are
 *   E = T − T₀  specialization gain;  F = U − U₀  stabilization change (negative = forgetting);
 *   O = E + F   the survey's overall score
 * plus the costs (trainable parameters and their share, extra optimizer/method state, peak GPU
 * memory, seconds per step). The tune report adds the loss curve, T and U over training and, for
 * masked methods, the share of each tensor's entries the mask lets train (R tensors × C snapshots).
 * The bench report puts each task's methods on a U–T plane around the base model: up is
 * specialization, right is stabilization. A bench over several architectures gets one table and
 * plane per architecture and task, each against that architecture's base, and a last section
 * comparing the architectures' H rankings (Kendall's tau, protocol/ranking.ts).
 *
 * Every input field is checked and a bad one throws an error naming it (`lossCurve[3][1] must be
 * a finite number, got NaN`); every string reaches HTML, SVG and markdown escaped.
 *
 * Non-goals: writing files (write.node.ts), running anything, comparing runs across devices.
 */
import { exactMatch } from '@keel/mllm';
import { rankingAgreement, type RankedRow } from '../protocol/ranking.js';
import { harmonicMean } from '../protocol/scores.js';
import type { TuneRow } from '../protocol/tune.js';
import { heatmap, lineChart, scatterChart, tuChart, type TUPoint } from './charts.js';
import { escapeHtml, escapeMarkdown, figure, formatBytes, formatCount, formatSeconds, htmlPage, htmlTable, markdownCode, markdownTable, pct, percentValue, signedPct, type Cell } from './html.js';
import { finiteNumber, fraction, nonEmpty, text } from './svg.js';

/** One chart: `name` is also its PNG's file name without the extension. */
export interface ReportChart {
  name: string;
  svg: string;
}

export interface TuneReportInput {
  title: string;
  strategy: string;
  task: string;
  /** The method's config as given (printed as JSON). */
  config: Readonly<Record<string, unknown>>;
  /** [step, mean training loss]. */
  lossCurve: readonly (readonly [number, number])[];
  /** T and U over training (step 0 = the base). */
  evalCurve: readonly TUPoint[];
  /** The final row (protocol/tune.ts). */
  table: TuneRow;
  /** The base model's scores on the same held-out draw. */
  base: { T: number; U: number };
  /** For masked methods: density[r][c] = share of tensor r's entries trainable at snapshot c. */
  masks?: { names: readonly string[]; density: readonly (readonly number[])[]; steps?: readonly number[] };
  /** A few held-out examples answered by the base (before) and the tuned model (after). */
  samples?: readonly { prompt: string; answer: string; before: string; after: string }[];
}

export interface BenchRow extends TuneRow {
  /** The model architecture the row was measured on, when a bench covers several. */
  arch?: string;
  /** Peak learning rate of the run (the suite's, or a --lr override). */
  lr?: number;
}

export interface BenchReportInput {
  device: string;
  date: string;
  /** The command line that produced the rows. */
  command: string;
  /** Base model scores: U, and T per task (with `bases`, the first architecture's). */
  base: { U: number; T: Readonly<Record<string, number>> };
  /**
   * Each architecture's base scores, by arch, in report order: every row then names its arch and
   * is checked and shown against that base, one table per arch and task.
   */
  bases?: Readonly<Record<string, { U: number; T: Readonly<Record<string, number>> }>>;
  rows: readonly BenchRow[];
}

/** Tolerance of the E = T − T₀, F = U − U₀, O = E + F, H = 2TU/(T+U) consistency checks. */
const SCORE_TOLERANCE = 1e-6;

/** Checks one TuneRow field by field (names like `table.peak_mb`, `rows[2].T`). */
export function checkTuneRow(field: string, row: TuneRow, base?: { T: number; U: number }): void {
  if (row === null || typeof row !== 'object') throw new Error(`${field} must be an object, got ${row === null ? 'null' : typeof row}`);
  text(`${field}.strategy`, row.strategy);
  text(`${field}.task`, row.task);
  for (const k of ['T', 'U', 'H'] as const) fraction(`${field}.${k}`, row[k]);
  for (const k of ['E', 'F', 'O'] as const) {
    if (Math.abs(finiteNumber(`${field}.${k}`, row[k])) > 2) throw new Error(`${field}.${k} must be a score difference in [-2, 2], got ${row[k]}`);
  }
  const h = harmonicMean(row.T, row.U);
  const expected: [string, number, number, string][] = [];
  if (base) expected.push(['E', row.E, row.T - base.T, 'T − T(base)'], ['F', row.F, row.U - base.U, 'U − U(base)']);
  expected.push(['H', row.H, h, '2TU/(T+U)'], ['O', row.O, row.E + row.F, 'E + F']);
  for (const [k, got, want, formula] of expected) {
    if (Math.abs(got - want) > SCORE_TOLERANCE) throw new Error(`${field}.${k} is ${got} but ${formula} gives ${want}`);
  }
  for (const k of ['trainable', 'extra_state_bytes', 'peak_mb', 'sec_per_step', 'sec'] as const) {
    if (finiteNumber(`${field}.${k}`, row[k]) < 0) throw new Error(`${field}.${k} must be ≥ 0, got ${row[k]}`);
  }
  const p = finiteNumber(`${field}.trainable_pct`, row.trainable_pct);
  if (p < 0 || p > 100) throw new Error(`${field}.trainable_pct must be a percentage in [0, 100], got ${p}`);
}

function checkBase(field: string, base: { T: number; U: number }): void {
  if (base === null || typeof base !== 'object') throw new Error(`${field} must be an object with T and U`);
  fraction(`${field}.T`, base.T);
  fraction(`${field}.U`, base.U);
}

/** Curve checks: steps finite and strictly increasing (`at(i)` names step i's field). */
function checkSteps(steps: readonly unknown[], at: (i: number) => string): void {
  let prev = -Infinity;
  steps.forEach((s, i) => {
    const step = finiteNumber(at(i), s);
    if (step <= prev) throw new Error(`${at(i)} must be greater than the previous step ${prev}, got ${step}`);
    prev = step;
  });
}

const SCORE_HEADERS = ['T', 'U', 'H', 'E', 'F', 'O'] as const;

function scoreCells(r: { T: number; U: number; H: number; E: number; F: number; O: number }): Cell[] {
  return [pct(r.T), pct(r.U), pct(r.H), signedPct(r.E), signedPct(r.F), signedPct(r.O)].map((t) => ({ text: t, num: true }));
}

/** The tune report: scores, costs, loss curve, T/U curve, mask heatmap, samples, config. */
export function renderTuneReport(input: TuneReportInput): { html: string; charts: ReportChart[] } {
  const title = text('title', input.title);
  const strategy = text('strategy', input.strategy);
  const task = text('task', input.task);
  checkBase('base', input.base);
  checkTuneRow('table', input.table, input.base);
  if (input.table.strategy !== strategy) throw new Error(`table.strategy '${input.table.strategy}' does not match strategy '${strategy}'`);
  if (input.table.task !== task) throw new Error(`table.task '${input.table.task}' does not match task '${task}'`);
  checkSteps(nonEmpty('lossCurve', input.lossCurve, 'point').map((p) => p?.[0]), (i) => `lossCurve[${i}][0]`);
  input.lossCurve.forEach((p, i) => finiteNumber(`lossCurve[${i}][1]`, p[1]));
  checkSteps(nonEmpty('evalCurve', input.evalCurve, 'point').map((p) => p?.step), (i) => `evalCurve[${i}].step`);
  input.evalCurve.forEach((p, i) => {
    fraction(`evalCurve[${i}].T`, p.T);
    fraction(`evalCurve[${i}].U`, p.U);
  });
  if (input.config === null || typeof input.config !== 'object') throw new Error('config must be an object');
  let configJson: string;
  try {
    configJson = JSON.stringify(input.config, null, 2);
  } catch (e) {
    throw new Error(`config must be JSON-serialisable: ${e instanceof Error ? e.message : String(e)}`);
  }

  const charts: ReportChart[] = [
    { name: 'loss', svg: lineChart({ title: `Training loss: ${strategy} on ${task}`, xLabel: 'step', yLabel: 'loss', series: [{ name: 'train loss', points: input.lossCurve }] }) },
    { name: 'tu', svg: tuChart(input.evalCurve, { title: `T and U over training: ${strategy} on ${task}` }) },
  ];
  if (input.masks !== undefined) charts.push({ name: 'masks', svg: maskHeatmap(input.masks, strategy) });

  const t = input.table;
  const scores = htmlTable(['model', ...SCORE_HEADERS], [
    { cells: [{ text: 'base' }, ...[pct(input.base.T), pct(input.base.U), pct(harmonicMean(input.base.T, input.base.U)), '—', '—', '—'].map((x) => ({ text: x, num: true }))] },
    { cells: [{ text: strategy }, ...scoreCells(t)] },
  ]);
  const costs = htmlTable(['trainable', 'trainable %', 'extra state', 'peak GPU memory', 's/step', 'training time'], [
    {
      cells: [formatCount(t.trainable), percentValue(t.trainable_pct), formatBytes(t.extra_state_bytes), `${t.peak_mb.toFixed(1)} MiB`, formatSeconds(t.sec_per_step), `${formatSeconds(t.sec)} s`].map((x) => ({ text: x, num: true })),
    },
  ]);
  let body = `<h1>${escapeHtml(title)}</h1>\n<p class="meta">Method <code>${escapeHtml(strategy)}</code> tuned on <code>${escapeHtml(task)}</code>. Scores in %; E = T − T(base), F = U − U(base) (negative = forgetting), O = E + F, H = 2TU/(T+U).</p>\n`;
  body += `<h2>Scores</h2>\n${scores}\n<h2>Cost</h2>\n${costs}\n`;
  body += `<h2>Training</h2>\n${figure(charts[0]!.svg, 'Mean training loss per reporting interval.')}\n`;
  body += figure(charts[1]!.svg, 'Exact-match accuracy on the target task (T) and the general suite (U); step 0 is the base model.') + '\n';
  if (input.masks !== undefined) body += `<h2>Mask density</h2>\n${figure(charts[2]!.svg, 'Share of each tensor’s entries the mask lets train.')}\n`;
  if (input.samples !== undefined) body += `<h2>Samples</h2>\n${samplesTable(input.samples)}\n`;
  body += `<h2>Config</h2>\n<pre>${escapeHtml(configJson)}</pre>\n`;
  return { html: htmlPage(title, body), charts };
}

function maskHeatmap(masks: NonNullable<TuneReportInput['masks']>, strategy: string): string {
  if (masks === null || typeof masks !== 'object') throw new Error('masks must be an object with names and density');
  const names = nonEmpty('masks.names', masks.names, 'name');
  names.forEach((n, i) => text(`masks.names[${i}]`, n));
  const density = nonEmpty('masks.density', masks.density, 'row');
  if (density.length !== names.length) throw new Error(`masks.density must have one row per name (${names.length}), got ${density.length}`);
  const cols = nonEmpty('masks.density[0]', density[0], 'column').length;
  density.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== cols) throw new Error(`masks.density[${r}] must have ${cols} columns like masks.density[0], got ${Array.isArray(row) ? row.length : typeof row}`);
    row.forEach((v, c) => fraction(`masks.density[${r}][${c}]`, v));
  });
  let columns: string[];
  if (masks.steps !== undefined) {
    if (!Array.isArray(masks.steps) || masks.steps.length !== cols) throw new Error(`masks.steps must have one step per density column (${cols})`);
    columns = masks.steps.map((s, i) => String(finiteNumber(`masks.steps[${i}]`, s)));
  } else {
    columns = cols === 1 ? ['final'] : Array.from({ length: cols }, (_, i) => `#${i + 1}`);
  }
  return heatmap({ title: `Mask density: ${strategy}`, rows: names, columns, values: density, ...(cols === 1 ? {} : { xLabel: 'step' }), valueLabel: 'trainable share' });
}

function samplesTable(samples: NonNullable<TuneReportInput['samples']>): string {
  if (!Array.isArray(samples)) throw new Error('samples must be an array');
  const rows = samples.map((s, i) => {
    const [prompt, answer, before, after] = (['prompt', 'answer', 'before', 'after'] as const).map((k) => text(`samples[${i}].${k}`, s?.[k]));
    const mark = (pred: string): Cell => (exactMatch(pred, answer!) ? { text: `✓ ${pred}`, cls: 'ok' } : { text: `✗ ${pred}`, cls: 'bad' });
    return { cells: [{ text: prompt! }, { text: answer! }, mark(before!), mark(after!)] };
  });
  return htmlTable(['prompt', 'answer', 'base (before)', 'tuned (after)'], rows);
}

/** A file-name-safe chart name part: anything outside [A-Za-z0-9._-] becomes '_'. */
const fileSafe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_');

type BaseScores = BenchReportInput['base'];

function checkBenchBase(field: string, base: BaseScores): void {
  if (base === null || typeof base !== 'object') throw new Error(`${field} must be an object with U and T`);
  fraction(`${field}.U`, base.U);
  if (base.T === null || typeof base.T !== 'object') throw new Error(`${field}.T must be an object mapping each task to its base score`);
}

/** One table and scatter per (architecture, task); `arch` undefined: rows without per-arch bases. */
interface Section {
  arch: string | undefined;
  task: string;
  base: { T: number; U: number };
  rows: BenchRow[];
  chart: string;
}

/**
 * The bench report: per architecture and task, a U–T scatter around that architecture's base and a
 * table of every method; with two or more architectures in `bases`, the H rankings compared
 * (protocol/ranking.ts). Without `bases`, rows are measured against `base` (an `arch` on a row is
 * then only a column and a scatter colour).
 */
export function renderBenchReport(input: BenchReportInput): { html: string; markdown: string; charts: ReportChart[] } {
  const device = text('device', input.device);
  const date = text('date', input.date);
  const command = text('command', input.command);
  checkBenchBase('base', input.base);
  const bases = input.bases;
  if (bases !== undefined) {
    if (bases === null || typeof bases !== 'object' || Object.keys(bases).length === 0) throw new Error('bases must map at least one architecture to its base scores');
    for (const [arch, b] of Object.entries(bases)) checkBenchBase(`bases.${arch}`, b);
  }
  const rows = nonEmpty('rows', input.rows, 'row');
  rows.forEach((r, i) => {
    const task = text(`rows[${i}].task`, r?.task);
    if (r.arch !== undefined) text(`rows[${i}].arch`, r.arch);
    if (r.lr !== undefined && !(typeof r.lr === 'number' && Number.isFinite(r.lr) && r.lr > 0)) throw new Error(`rows[${i}].lr must be a positive number, got ${JSON.stringify(r.lr)}`);
    let field = 'base';
    let base = input.base;
    if (bases !== undefined) {
      if (r.arch === undefined || !Object.hasOwn(bases, r.arch)) throw new Error(`rows[${i}].arch must name one of bases (${Object.keys(bases).join(', ')}), got ${JSON.stringify(r.arch)}`);
      field = `bases.${r.arch}`;
      base = bases[r.arch]!;
    }
    const baseT = base.T[task];
    if (baseT === undefined) throw new Error(`${field}.T.${task} is missing: rows[${i}] is on task '${task}'`);
    fraction(`${field}.T.${task}`, baseT);
    // Without per-arch bases, a row measured on another architecture has its own base model, so E
    // and F are checked against `base` only for rows without `arch`; H and O for every row.
    checkTuneRow(`rows[${i}]`, r, bases !== undefined || r.arch === undefined ? { T: baseT, U: base.U } : undefined);
  });
  const groups: [string | undefined, BaseScores][] = bases ? Object.entries(bases) : [[undefined, input.base]];
  const multi = groups.length > 1;
  const sections: Section[] = [];
  const chartNames = new Map<string, string>();
  for (const [arch, base] of groups) {
    const archRows = rows.filter((r) => bases === undefined || r.arch === arch);
    for (const task of new Set(archRows.map((r) => r.task))) {
      const where = arch === undefined ? `task '${task}'` : `arch '${arch}', task '${task}'`;
      const chart = multi ? `scatter-${fileSafe(arch!)}-${fileSafe(task)}` : `scatter-${fileSafe(task)}`;
      if (chartNames.has(chart)) throw new Error(`rows: ${chartNames.get(chart)} and ${where} map to the same chart name ${chart}`);
      chartNames.set(chart, where);
      sections.push({ arch, task, base: { T: base.T[task]!, U: base.U }, rows: archRows.filter((r) => r.task === task), chart });
    }
  }
  const withArch = bases === undefined && rows.some((r) => r.arch !== undefined);
  const headers = ['strategy', ...(withArch ? ['arch'] : []), ...SCORE_HEADERS, 'trainable %', 'peak MB', 's/step'];
  const numeric = headers.map((h) => h !== 'strategy' && h !== 'arch');

  const charts: ReportChart[] = [];
  const archNote = bases ? ` Architecture${multi ? 's' : ''}: ${Object.keys(bases).join(', ')}; each against its own base model.` : '';
  const legend = `Scores in %; E = T − T(base), F = U − U(base) (negative = forgetting), O = E + F, H = 2TU/(T+U); the best H per task is in bold.`;
  let md = `# keel bench\n\nDevice: ${escapeMarkdown(device)}. Date: ${escapeMarkdown(date)}.${escapeMarkdown(archNote)} ${legend}\n\n${markdownCode(command, 'sh')}\n`;
  let body = `<h1>keel bench</h1>\n<p class="meta">Device ${escapeHtml(device)}, ${escapeHtml(date)}.${escapeHtml(archNote)} ${legend}</p>\n<pre>${escapeHtml(command)}</pre>\n`;
  for (const { arch, task, base, rows: taskRows, chart } of sections) {
    const bestH = Math.max(...taskRows.map((r) => r.H));
    const on = arch === undefined ? task : `${arch} · ${task}`;
    const svg = scatterChart({
      title: `${on}: target vs upstream`,
      xLabel: 'U: upstream score (general suite)',
      yLabel: `T: target score (${task})`,
      percent: true,
      points: taskRows.map((r) => ({ label: r.strategy, x: r.U, y: r.T, group: r.arch ?? r.task })),
      base: { label: arch === undefined ? 'base' : `${arch} base`, x: base.U, y: base.T },
    });
    charts.push({ name: chart, svg });
    const cells = (r: BenchRow): string[] => [r.strategy, ...(withArch ? [r.arch ?? ''] : []), pct(r.T), pct(r.U), pct(r.H), signedPct(r.E), signedPct(r.F), signedPct(r.O), percentValue(r.trainable_pct), r.peak_mb.toFixed(1), formatSeconds(r.sec_per_step)];
    const heading = `${on}: base T ${pct(base.T)}, U ${pct(base.U)}`;
    md += `\n## ${escapeMarkdown(heading)}\n\n${markdownTable(headers, numeric, taskRows.map((r) => ({ cells: cells(r), bold: r.H === bestH })))}\n`;
    const htmlRows = taskRows.map((r) => ({ best: r.H === bestH, cells: cells(r).map((c, i) => ({ text: c, num: numeric[i]! })) }));
    body += `<h2>${escapeHtml(heading)}</h2>\n${figure(svg, 'Each method at (U, T) after tuning; the diamond is the base model. Up = specialization, right = stabilization.')}\n${htmlTable(headers, htmlRows)}\n`;
  }
  if (multi) {
    const c = rankingComparison(rows.map((r) => ({ arch: r.arch!, task: r.task, strategy: r.strategy, H: r.H })));
    md += c.markdown;
    body += c.html;
  }
  return { html: htmlPage(`keel bench — ${date}`, body), markdown: md, charts };
}

/** The "does the ranking hold" section: per task, each arch's H order side by side, tau, the verdict. */
function rankingComparison(rows: RankedRow[]): { markdown: string; html: string } {
  const a = rankingAgreement(rows);
  const title = 'Does the H ranking hold across architectures?';
  const intro = 'Strategies ranked by H on each architecture (best first, tied H share a rank); Kendall’s tau-b between the rankings: 1 = same order, 0 = unrelated, −1 = reversed.';
  let md = `\n## ${title}\n\n${escapeMarkdown(intro)}\n`;
  let html = `<h2>${escapeHtml(title)}</h2>\n<p>${escapeHtml(intro)}</p>\n`;
  const headers = a.archs;
  const numeric = headers.map(() => false);
  for (const t of a.tasks) {
    const taus = t.pairs.map((p) => `tau(${p.a}, ${p.b}) = ${p.tau === null ? 'undefined' : p.tau.toFixed(2)}`).join(', ');
    const heading = `${t.task}: ${taus || 'nothing to compare'}`;
    const table = t.strategies.map((_, i) => t.rankings.map((r) => `${r.order[i]!.rank}. ${r.order[i]!.strategy} ${pct(r.order[i]!.H)}`));
    md += `\n### ${escapeMarkdown(heading)}\n\n${table.length ? markdownTable(headers, numeric, table.map((cells) => ({ cells }))) : 'No strategy ran on every architecture.'}\n`;
    html += `<h3>${escapeHtml(heading)}</h3>\n${table.length ? htmlTable(headers, table.map((cells) => ({ cells: cells.map((c, i) => ({ text: c, num: numeric[i]! })) }))) : '<p>No strategy ran on every architecture.</p>'}\n`;
  }
  md += `\n**${escapeMarkdown(a.verdict)}**\n`;
  html += `<p><strong>${escapeHtml(a.verdict)}</strong></p>\n`;
  return { markdown: md, html };
}
