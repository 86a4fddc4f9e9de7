import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SaxesParser } from 'saxes';
import { afterAll, describe, expect, it } from 'vitest';
import type { TuneRow } from '../protocol/tune.js';
import { heatmap, lineChart, scatterChart, tuChart } from './charts.js';
import { rasterizeSvg, resolveFontFiles } from './png.node.js';
import { renderBenchReport, renderTuneReport, type BenchRow, type TuneReportInput } from './report.js';
import { niceStep, niceTicks, viridis } from './svg.js';
import { writeBenchReport, writeTuneReport } from './write.node.js';

const EVIL = '<script>alert("x")</script> & \'q\'';

interface Element {
  name: string;
  attributes: Record<string, string>;
}

/** Parses `xml` with a strict XML parser (throws on anything ill-formed); returns elements and the text. */
function parseXml(xml: string): { elements: Element[]; text: string } {
  const parser = new SaxesParser();
  const elements: Element[] = [];
  let text = '';
  parser.on('error', (e) => {
    throw e;
  });
  parser.on('opentag', (t) => elements.push({ name: t.name, attributes: t.attributes as Record<string, string> }));
  parser.on('text', (t) => (text += t));
  parser.write(xml).close();
  if (elements.some((e) => e.name === 'script')) throw new Error('the svg has a <script> element: an input string reached it unescaped');
  if (elements[0]?.name !== 'svg' || elements[0].attributes.xmlns !== 'http://www.w3.org/2000/svg') throw new Error('root is not an <svg> in the SVG namespace');
  return { elements, text };
}

const ticks = (svg: string, axis: 'x' | 'y'): number[] =>
  parseXml(svg).elements.filter((e) => e.name === 'g' && e.attributes.class === `tick ${axis}`).map((e) => Number(e.attributes['data-value']));

const countClass = (svg: string, name: string, cls: string): number => parseXml(svg).elements.filter((e) => e.name === name && e.attributes.class === cls).length;

const svgSize = (svg: string): [number, number] => {
  const root = parseXml(svg).elements[0]!;
  return [Number(root.attributes.width), Number(root.attributes.height)];
};

/** Width and height from a PNG's IHDR chunk, after checking the 8-byte signature. */
function pngSize(bytes: Uint8Array): [number, number] {
  expect([...bytes.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(String.fromCharCode(...bytes.subarray(12, 16))).toBe('IHDR');
  return [view.getUint32(16), view.getUint32(20)];
}

/** A TuneRow whose H, E, F, O follow from T, U and the base, like protocolScores computes them. */
function row(strategy: string, task: string, T: number, U: number, base: { T: number; U: number }, extra: Partial<BenchRow> = {}): BenchRow {
  const E = T - base.T;
  const F = U - base.U;
  const H = T + U > 0 ? (2 * T * U) / (T + U) : 0;
  return { strategy, task, T, U, H, E, F, O: E + F, trainable: 65536, trainable_pct: 0.42, extra_state_bytes: 3 << 20, peak_mb: 210.5, sec_per_step: 0.031, sec: 6.2, ...extra };
}

const BASE = { T: 0.25, U: 0.6 };
const NAMES = ['language_model.model.layers.0.self_attn.q_proj.weight', 'language_model.model.layers.0.mlp.down_proj.weight', `${EVIL}.weight`];

function tuneInput(over: Partial<TuneReportInput> = {}): TuneReportInput {
  return {
    title: `Tune report ${EVIL}`,
    strategy: 'lora',
    task: 'counting',
    config: { strategy: 'lora', r: 8, note: EVIL },
    lossCurve: Array.from({ length: 20 }, (_, i) => [(i + 1) * 5, 2.5 * Math.exp(-i / 6) + 0.17] as [number, number]),
    evalCurve: [{ step: 0, T: 0.25, U: 0.6 }, { step: 50, T: 0.61, U: 0.57 }, { step: 100, T: 0.83, U: 0.55 }],
    table: row('lora', 'counting', 0.83, 0.55, BASE),
    base: BASE,
    masks: { names: NAMES, density: [[0.1, 0.2, 0.3, 0.35], [0.5, 0.5, 0.6, 0.9], [0, 0.05, 1, 1]], steps: [25, 50, 75, 100] },
    samples: [{ prompt: 'How many dots?', answer: 'Three', before: 'two', after: ' three ' }, { prompt: EVIL, answer: 'x', before: 'x', after: 'y' }],
    ...over,
  };
}

const benchInput = () => ({
  device: `lavapipe ${EVIL}`,
  date: '2025-06-01',
  command: 'keel bench --tasks counting,colors ```',
  base: { U: 0.6, T: { counting: 0.25, colors: 0.4 } },
  rows: [
    row('full', 'counting', 0.92, 0.31, { T: 0.25, U: 0.6 }),
    row('lora', 'counting', 0.83, 0.55, { T: 0.25, U: 0.6 }),
    row(EVIL, 'counting', 0.8, 0.59, { T: 0.25, U: 0.6 }),
    row('lora', 'colors', 0.7, 0.58, { T: 0.4, U: 0.6 }),
    row('bitfit', 'colors', 0.55, 0.6, { T: 0.4, U: 0.6 }),
  ],
});

describe('svg primitives', () => {
  it('niceTicks covers [lo, hi] at the smallest 1-2-5 step ≥ span/count (float64 brute force)', () => {
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 300; trial++) {
      const scale = 10 ** Math.floor(rand() * 12 - 6);
      const a = (rand() - 0.3) * scale;
      const b = a + rand() * scale;
      const count = 1 + Math.floor(rand() * 8);
      const t = niceTicks(a, b, count);
      // Reference: enumerate every {1, 2, 5}·10^k and take the smallest ≥ (b − a)/count.
      const candidates: number[] = [];
      for (let k = -12; k <= 12; k++) for (const m of [1, 2, 5]) candidates.push(m * 10 ** k);
      const raw = a === b ? (2 * Math.max(Math.abs(a) * 0.1, 1)) / count : (b - a) / count;
      const want = Math.min(...candidates.filter((c) => c >= raw * (1 - 1e-9)));
      const step = t[1]! - t[0]!;
      expect(Math.abs(step - want) / want).toBeLessThan(1e-9);
      expect(t[0]!).toBeLessThanOrEqual(a);
      expect(t[t.length - 1]!).toBeGreaterThanOrEqual(b);
      expect(t[0]! + step).toBeGreaterThan(a - 1e-12 * scale); // no tick wasted below the data
      expect(t.length).toBeLessThanOrEqual(count + 2);
    }
    expect(niceTicks(3, 3)).toEqual([2, 2.5, 3, 3.5, 4]); // degenerate range widened by max(10 %, 1)
    expect(niceStep(0.3)).toBe(0.5);
  });

  it('viridis hits its anchors and interpolates linearly between them', () => {
    expect(viridis(0)).toBe('#440154');
    expect(viridis(1)).toBe('#fde725');
    expect(viridis(-3)).toBe('#440154');
    // Halfway between anchors 0 (#440154) and 1 (#482878), computed in float64.
    const mid = [0x44, 0x01, 0x54].map((c, i) => Math.round(c + ([0x48, 0x28, 0x78][i]! - c) * 0.5));
    expect(viridis(0.5 / 9)).toBe('#' + mid.map((c) => c.toString(16).padStart(2, '0')).join(''));
  });
});

describe('charts', () => {
  it('line chart: well-formed, one path per series, ticks cover the data range', () => {
    const a: [number, number][] = [[3, 0.8], [40, 2.6], [97, 0.11]];
    const svg = lineChart({ title: 'loss', xLabel: 'step', yLabel: 'loss', series: [{ name: 'train', points: a }, { name: EVIL, points: [[10, 1.7], [120, -0.4]] }] });
    expect(countClass(svg, 'g', 'series')).toBe(2);
    const x = ticks(svg, 'x');
    const y = ticks(svg, 'y');
    expect(Math.min(...x)).toBeLessThanOrEqual(3);
    expect(Math.max(...x)).toBeGreaterThanOrEqual(120);
    expect(Math.min(...y)).toBeLessThanOrEqual(-0.4);
    expect(Math.max(...y)).toBeGreaterThanOrEqual(2.6);
  });

  it('T/U chart prints y as percentages and covers both series', () => {
    const svg = tuChart([{ step: 0, T: 0.12, U: 0.71 }, { step: 100, T: 0.93, U: 0.64 }]);
    const y = ticks(svg, 'y');
    expect(Math.min(...y)).toBeLessThanOrEqual(0.12);
    expect(Math.max(...y)).toBeGreaterThanOrEqual(0.93);
    expect(parseXml(svg).text).toMatch(/100%|90%/);
    expect(() => tuChart([{ step: 0, T: 1.2, U: 0.5 }])).toThrow(/evalCurve\[0\]\.T must be a fraction in \[0, 1\], got 1\.2/);
  });

  it('heatmap has rows × columns cells, single column included', () => {
    const values = [[0.1, 0.5, 1], [0, 0.2, 0.3]];
    const svg = heatmap({ title: 'masks', rows: ['a', EVIL], columns: ['1', '2', '3'], values });
    expect(countClass(svg, 'rect', 'cell')).toBe(6);
    expect(parseXml(svg).text).toContain(EVIL);
    expect(countClass(heatmap({ title: 'm', rows: ['a', 'b', 'c'], columns: ['final'], values: [[0.1], [0.2], [0.3]] }), 'rect', 'cell')).toBe(3);
    const fills = parseXml(svg).elements.filter((e) => e.attributes.class === 'cell').map((e) => e.attributes.fill);
    expect(fills).toEqual(values.flat().map(viridis));
    expect(() => heatmap({ title: 'm', rows: ['a'], columns: ['1', '2'], values: [[0.1]] })).toThrow(/values\[0\] must have one value per column \(2\), got 1/);
    expect(() => heatmap({ title: 'm', rows: ['a'], columns: ['1'], values: [[NaN]] })).toThrow(/values\[0\]\[0\] must be a finite number, got NaN/);
  });

  it('scatter: one labelled point per strategy, one colour per group, a base diamond, ticks covering all', () => {
    const points = [{ label: 'lora', x: 0.55, y: 0.83, group: 'counting' }, { label: 'full', x: 0.31, y: 0.92, group: 'counting' }, { label: EVIL, x: 0.6, y: 0.5, group: 'colors' }];
    const svg = scatterChart({ title: 'T vs U', xLabel: 'U', yLabel: 'T', points, base: { x: 0.6, y: 0.25 }, percent: true });
    const parsed = parseXml(svg);
    const circles = parsed.elements.filter((e) => e.name === 'circle' && e.attributes['fill-opacity']);
    expect(circles).toHaveLength(3);
    expect(circles[0]!.attributes.fill).toBe(circles[1]!.attributes.fill);
    expect(circles[2]!.attributes.fill).not.toBe(circles[0]!.attributes.fill);
    expect(countClass(svg, 'g', 'base')).toBe(1);
    expect(parsed.text).toContain(EVIL);
    expect(Math.min(...ticks(svg, 'y'))).toBeLessThanOrEqual(0.25);
    expect(Math.max(...ticks(svg, 'x'))).toBeGreaterThanOrEqual(0.6);
    expect(() => scatterChart({ title: 't', xLabel: 'U', yLabel: 'T', points: [{ label: 'a', x: Infinity, y: 0, group: 'g' }] })).toThrow(/points\[0\]\.x must be a finite number/);
  });
});

describe('renderTuneReport', () => {
  it('gives well-formed loss, T/U and mask charts inline in escaped, self-contained HTML', () => {
    const { html, charts } = renderTuneReport(tuneInput());
    expect(charts.map((c) => c.name)).toEqual(['loss', 'tu', 'masks']);
    for (const c of charts) {
      parseXml(c.svg);
      expect(html).toContain(c.svg);
    }
    expect(countClass(charts[2]!.svg, 'rect', 'cell')).toBe(3 * 4);
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain('&lt;script&gt;');
    expect(html).not.toMatch(/(src|href)=|@import|url\(/); // no external asset
    expect(html).toMatch(/<td class="num">83\.0<\/td><td class="num">55\.0<\/td>/);
    expect(html).toContain('+58.0'); // E = 0.83 − 0.25
    expect(html).toContain('-5.0'); // F = 0.55 − 0.60
    expect(html).toMatch(/class="bad">✗ two<.*class="ok">✓  three /s); // exact match ignores case and outer space
    const { charts: plain } = renderTuneReport(tuneInput({ masks: undefined as never, samples: undefined as never }));
    expect(plain.map((c) => c.name)).toEqual(['loss', 'tu']);
  });

  it('rejects bad input with an error naming the field', () => {
    const cases: [Partial<TuneReportInput>, RegExp][] = [
      [{ lossCurve: [] }, /lossCurve must have at least one point/],
      [{ evalCurve: [] }, /evalCurve must have at least one point/],
      [{ lossCurve: [[1, 2], [2, NaN]] }, /lossCurve\[1\]\[1\] must be a finite number, got NaN/],
      [{ lossCurve: [[2, 2], [2, 1]] }, /lossCurve\[1\]\[0\] must be greater than the previous step 2/],
      [{ evalCurve: [{ step: 0, T: NaN, U: 0.5 }] }, /evalCurve\[0\]\.T must be a finite number, got NaN/],
      [{ table: { ...row('lora', 'counting', 0.83, 0.55, BASE), peak_mb: NaN } }, /table\.peak_mb must be a finite number, got NaN/],
      [{ table: { ...row('lora', 'counting', 0.83, 0.55, BASE), E: 0.1 } }, /table\.E is 0\.1 but T − T\(base\) gives 0\.58/],
      [{ table: row('dora', 'counting', 0.83, 0.55, BASE) }, /table\.strategy 'dora' does not match strategy 'lora'/],
      [{ base: { T: 0.25, U: Number.NaN } }, /base\.U must be a finite number, got NaN/],
      [{ masks: { names: ['a', 'b'], density: [[0.5]] } }, /masks\.density must have one row per name \(2\), got 1/],
      [{ masks: { names: ['a'], density: [[1.5]] } }, /masks\.density\[0\]\[0\] must be a fraction in \[0, 1\], got 1\.5/],
      [{ samples: [{ prompt: 'p', answer: 'a', before: 'b' } as never] }, /samples\[0\]\.after must be a string, got undefined/],
      [{ title: 3 as never }, /title must be a string, got number/],
    ];
    for (const [over, message] of cases) expect(() => renderTuneReport(tuneInput(over))).toThrow(message);
  });
});

describe('renderBenchReport', () => {
  it('one markdown table per task with one row per strategy, scatter per task, everything escaped', () => {
    const { html, markdown, charts } = renderBenchReport(benchInput());
    expect(charts.map((c) => c.name)).toEqual(['scatter-counting', 'scatter-colors']);
    for (const c of charts) expect(html).toContain(c.svg);
    expect(parseXml(charts[0]!.svg).elements.filter((e) => e.name === 'g' && e.attributes.class === 'point')).toHaveLength(3);
    const sections = markdown.split(/^## /m).slice(1);
    expect(sections.map((s) => s.split('\n')[0])).toEqual(['counting: base T 25.0, U 60.0', 'colors: base T 40.0, U 60.0']);
    const tableRows = sections.map((s) => s.split('\n').filter((l) => l.startsWith('|')).slice(2)); // minus header and rule
    expect(tableRows.map((r) => r.length)).toEqual([3, 2]);
    expect(tableRows[1]![0]).toBe('| **lora** | **70.0** | **58.0** | **63.4** | **+30.0** | **-2.0** | **+28.0** | **0.42** | **210.5** | **0.0310** |');
    expect(tableRows[0]![2]).toContain('&lt;script&gt;');
    expect(markdown).not.toMatch(/<script/i);
    expect(markdown).toContain('````sh\nkeel bench --tasks counting,colors ```\n````'); // fence outlasts the command's backticks
    expect(html).not.toMatch(/<script/i);
    expect(html.match(/<tr class="best">/g)).toHaveLength(2);
  });

  it('adds an arch column and colours by arch when rows carry one', () => {
    const input = benchInput();
    input.rows = input.rows.map((r, i) => ({ ...r, arch: i % 2 ? 'tiny' : 'small' }));
    const { markdown, charts } = renderBenchReport(input);
    expect(markdown).toContain('| strategy | arch | T | U | H | E | F | O | trainable % | peak MB | s/step |');
    const fills = new Set(parseXml(charts[0]!.svg).elements.filter((e) => e.name === 'circle' && e.attributes['fill-opacity']).map((e) => e.attributes.fill));
    expect(fills.size).toBe(2);
  });

  it('rejects bad input with an error naming the field', () => {
    const missing = benchInput();
    missing.base.T = { counting: 0.25 } as never;
    expect(() => renderBenchReport(missing)).toThrow(/base\.T\.colors is missing: rows\[3\] is on task 'colors'/);
    expect(() => renderBenchReport({ ...benchInput(), rows: [] })).toThrow(/rows must have at least one row/);
    const nan = benchInput();
    nan.rows[1] = { ...nan.rows[1]!, sec_per_step: NaN };
    expect(() => renderBenchReport(nan)).toThrow(/rows\[1\]\.sec_per_step must be a finite number, got NaN/);
  });
});

describe('PNG and files', () => {
  const dirs: string[] = [];
  const tempDir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'keel-report-'));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('draws the text: a chart with labels has far more dark pixels than the same frame without', () => {
    const frame = (label: string): string =>
      `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="60"><rect width="200" height="60" fill="#fff"/><text x="10" y="40" font-family="'DejaVu Sans', sans-serif" font-size="24">${label}</text></svg>`;
    const dark = (svg: string): number => {
      const { rgba } = rasterizeSvg(svg, { scale: 1 });
      let n = 0;
      for (let i = 0; i < rgba.length; i += 4) if (rgba[i]! < 128) n++;
      return n;
    };
    expect(dark(frame(''))).toBe(0);
    expect(dark(frame('Loss 0.123'))).toBeGreaterThan(200);
  });

  it('fails clearly without a font', () => {
    expect(() => resolveFontFiles(undefined, ['/nonexistent/DejaVuSans.ttf'])).toThrow(/no font found for the chart text \(looked for \/nonexistent\/DejaVuSans\.ttf\).*fonts-dejavu-core/);
    expect(() => rasterizeSvg(lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', points: [[0, 1]] }] }), { fontFiles: ['/nonexistent.ttf'] })).toThrow(
      /fontFiles\[0\] \(\/nonexistent\.ttf\) does not exist/,
    );
  });

  it('writeTuneReport writes report.html and one PNG per chart at 2× the SVG size, atomically', async () => {
    const dir = join(tempDir(), 'run');
    const input = tuneInput();
    const { files } = await writeTuneReport(dir, input);
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['report.html', 'loss.png', 'tu.png', 'masks.png']);
    const { charts } = renderTuneReport(input);
    for (const c of charts) {
      const [w, h] = svgSize(c.svg);
      expect(pngSize(new Uint8Array(readFileSync(join(dir, `${c.name}.png`))))).toEqual([2 * w, 2 * h]);
    }
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toBe(renderTuneReport(input).html);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    await writeTuneReport(dir, tuneInput({ title: 'second' }), { scale: 1 }); // overwrites in place
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain('<title>second</title>');
    expect(pngSize(new Uint8Array(readFileSync(join(dir, 'loss.png'))))).toEqual(svgSize(charts[0]!.svg));
  });

  it('writeBenchReport writes bench.html, bench.md and scatter-<task>.png; bad input writes nothing', async () => {
    const dir = join(tempDir(), 'bench');
    const { files } = await writeBenchReport(dir, benchInput());
    expect(files.map((f) => f.slice(dir.length + 1))).toEqual(['bench.html', 'bench.md', 'scatter-counting.png', 'scatter-colors.png']);
    const { charts, markdown } = renderBenchReport(benchInput());
    expect(pngSize(new Uint8Array(readFileSync(join(dir, 'scatter-colors.png'))))).toEqual(svgSize(charts[1]!.svg).map((v) => 2 * v));
    expect(readFileSync(join(dir, 'bench.md'), 'utf8')).toBe(markdown);
    const empty = join(tempDir(), 'never');
    await expect(writeBenchReport(empty, { ...benchInput(), rows: [] })).rejects.toThrow(/rows must have at least one row/);
    expect(existsSync(empty)).toBe(false);
  });
});
