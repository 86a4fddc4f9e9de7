/**
 * The four charts of keel's tune and bench reports, each a standalone SVG string (report.ts puts
 * them inline in the HTML, png.node.ts rasterizes them):
 *   lineChart   named series of (x, y) points, e.g. the training loss curve [step, loss]
 *   tuChart     target score T and upstream score U over training, y in %: specialization rising
 *               while stabilization holds (or falls: forgetting, the survey's F < 0)
 *   heatmap     R×C values in [0, 1], e.g. the share of each tensor's entries a mask lets train
 *               (rows = tensors, columns = steps or one final column), with a viridis colour scale
 *   scatterChart  one labelled point per strategy at (U, T), coloured by group (task or model
 *               architecture), with the base model's point as a diamond: up and right is better,
 *               a point left of the base forgot, a point below it did not specialize
 * Dimensions: R rows (tensors), C columns (steps), N points; every length is in SVG px.
 *
 * Every builder checks its input and throws an error naming the field (`series[1].points[4][1]
 * must be a finite number, got NaN`); every string it draws goes through escapeXml.
 *
 * Non-goals: label collision avoidance on the scatter, zoom or tooltips beyond SVG <title>,
 * log axes, themes.
 */
import { PALETTE, axes, diamond, escapeXml, finiteNumber, fraction, legend, niceTicks, nonEmpty, px, text, textWidth, truncateMiddle, svgDocument, viridis } from './svg.js';

export interface LineSeries {
  name: string;
  /** [x, y] pairs, drawn in the given order. */
  points: readonly (readonly [number, number])[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly LineSeries[];
  /** Prints y ticks as percentages of fractions (default false). */
  yPercent?: boolean;
  width?: number;
  height?: number;
}

/** Markers are drawn on series with at most this many points; denser curves read better bare. */
const MAX_MARKED_POINTS = 40;

/** Named series as polylines over shared axes, with a legend on the right. */
export function lineChart(o: LineChartOptions): string {
  const title = text('lineChart: title', o.title);
  const series = nonEmpty('lineChart: series', o.series, 'series');
  const xs: number[] = [];
  const ys: number[] = [];
  series.forEach((s, i) => {
    text(`lineChart: series[${i}].name`, s.name);
    nonEmpty(`lineChart: series[${i}].points`, s.points, 'point').forEach((p, j) => {
      xs.push(finiteNumber(`lineChart: series[${i}].points[${j}][0]`, p[0]));
      ys.push(finiteNumber(`lineChart: series[${i}].points[${j}][1]`, p[1]));
    });
  });
  const width = o.width ?? 640;
  const height = o.height ?? 360;
  const legendWidth = 40 + Math.max(...series.map((s) => textWidth(s.name, 11)));
  const area = { left: 64, top: 36, width: width - 64 - legendWidth - 16, height: height - 36 - 52 };
  if (area.width < 80 || area.height < 60) throw new Error(`lineChart: width ${width} × height ${height} leaves no room for the plot`);
  const xTicks = niceTicks(Math.min(...xs), Math.max(...xs), 6);
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys), 5);
  const ax = axes({ area, xTicks, yTicks, xLabel: o.xLabel, yLabel: o.yLabel, yPercent: o.yPercent ?? false });
  let body = ax.svg;
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${px(ax.x(p[0]))} ${px(ax.y(p[1]))}`).join('');
    body += `<g class="series" data-name="${escapeXml(s.name)}"><path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round"/>`;
    if (s.points.length <= MAX_MARKED_POINTS) {
      for (const p of s.points) body += `<circle cx="${px(ax.x(p[0]))}" cy="${px(ax.y(p[1]))}" r="2.5" fill="${color}"/>`;
    }
    body += '</g>';
  });
  body += legend(area.left + area.width + 20, area.top + 8, series.map((s, i) => ({ name: s.name, color: PALETTE[i % PALETTE.length]!, mark: 'line' as const })));
  return svgDocument(width, height, title, body);
}

/** One point of the T/U curve: scores are fractions in [0, 1]. */
export interface TUPoint {
  step: number;
  T: number;
  U: number;
}

/** T (target) and U (upstream) over training steps, y in %. */
export function tuChart(evalCurve: readonly TUPoint[], options: { title?: string; width?: number; height?: number } = {}): string {
  nonEmpty('tuChart: evalCurve', evalCurve, 'point').forEach((p, i) => {
    finiteNumber(`tuChart: evalCurve[${i}].step`, p.step);
    fraction(`tuChart: evalCurve[${i}].T`, p.T);
    fraction(`tuChart: evalCurve[${i}].U`, p.U);
  });
  return lineChart({
    title: options.title ?? 'Target (T) and upstream (U) scores',
    xLabel: 'step',
    yLabel: 'exact-match accuracy',
    yPercent: true,
    series: [
      { name: 'T (target)', points: evalCurve.map((p) => [p.step, p.T] as const) },
      { name: 'U (upstream)', points: evalCurve.map((p) => [p.step, p.U] as const) },
    ],
    ...(options.width !== undefined ? { width: options.width } : {}),
    ...(options.height !== undefined ? { height: options.height } : {}),
  });
}

export interface HeatmapOptions {
  title: string;
  /** Row labels (R), e.g. tensor names. */
  rows: readonly string[];
  /** Column labels (C), e.g. steps; one column for a single snapshot. */
  columns: readonly string[];
  /** values[r][c] in [0, 1]. */
  values: readonly (readonly number[])[];
  xLabel?: string;
  /** Name of the value, shown over the colour scale (default 'density'). */
  valueLabel?: string;
}

const CELL_HEIGHT = 14;
const MAX_LABEL_CHARS = 56;
/** Column labels printed at most (the others stay readable through each cell's <title>). */
const MAX_COLUMN_LABELS = 10;

/** An R×C grid of viridis cells (`<rect class="cell">`, each with a <title>), plus a colour scale. */
export function heatmap(o: HeatmapOptions): string {
  const title = text('heatmap: title', o.title);
  const rows = nonEmpty('heatmap: rows', o.rows, 'row');
  const columns = nonEmpty('heatmap: columns', o.columns, 'column');
  rows.forEach((r, i) => text(`heatmap: rows[${i}]`, r));
  columns.forEach((c, i) => text(`heatmap: columns[${i}]`, c));
  if (!Array.isArray(o.values) || o.values.length !== rows.length) {
    throw new Error(`heatmap: values must have one entry per row (${rows.length}), got ${Array.isArray(o.values) ? o.values.length : typeof o.values}`);
  }
  o.values.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== columns.length) {
      throw new Error(`heatmap: values[${r}] must have one value per column (${columns.length}), got ${Array.isArray(row) ? row.length : typeof row}`);
    }
    row.forEach((v, c) => fraction(`heatmap: values[${r}][${c}]`, v));
  });
  const labels = rows.map((r) => truncateMiddle(r, MAX_LABEL_CHARS));
  const left = 16 + Math.max(60, ...labels.map((l) => textWidth(l, 10)));
  const cellWidth = Math.max(3, Math.min(48, 480 / columns.length));
  const top = 40;
  const plotW = cellWidth * columns.length;
  const plotH = CELL_HEIGHT * rows.length;
  const width = left + plotW + Math.max(100, 40 + textWidth(o.valueLabel ?? 'density', 10));
  const height = top + plotH + 56;
  let body = '<g class="cells">';
  rows.forEach((name, r) => {
    const y = top + r * CELL_HEIGHT;
    body += `<text class="row-label" x="${px(left - 6)}" y="${px(y + CELL_HEIGHT / 2)}" dy="0.35em" text-anchor="end" font-size="10"><title>${escapeXml(name)}</title>${escapeXml(labels[r]!)}</text>`;
    columns.forEach((col, c) => {
      const v = o.values[r]![c]!;
      body +=
        `<rect class="cell" x="${px(left + c * cellWidth)}" y="${px(y)}" width="${px(cellWidth)}" height="${CELL_HEIGHT}" fill="${viridis(v)}">` +
        `<title>${escapeXml(`${name} @ ${col}: ${(v * 100).toFixed(1)}%`)}</title></rect>`;
    });
  });
  body += '</g>';
  const every = Math.ceil(columns.length / MAX_COLUMN_LABELS);
  columns.forEach((col, c) => {
    if (c % every !== 0 && c !== columns.length - 1) return;
    body += `<text class="col-label" x="${px(left + (c + 0.5) * cellWidth)}" y="${px(top + plotH + 14)}" text-anchor="middle" font-size="10">${escapeXml(col)}</text>`;
  });
  if (o.xLabel !== undefined) {
    body += `<text class="axis-label" x="${px(left + plotW / 2)}" y="${px(top + plotH + 36)}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`;
  }
  body += colourScale(left + plotW + 24, top, Math.min(plotH, 200), o.valueLabel ?? 'density');
  return svgDocument(width, height, title, body);
}

/** A vertical viridis bar from 0 % (bottom) to 100 % (top) in 20 bands. */
function colourScale(x: number, top: number, height: number, label: string): string {
  const bands = 20;
  const h = Math.max(height, 60);
  let s = `<g class="colour-scale"><text x="${px(x)}" y="${px(top - 6)}" font-size="10">${escapeXml(label)}</text>`;
  for (let i = 0; i < bands; i++) {
    s += `<rect x="${px(x)}" y="${px(top + (h * (bands - 1 - i)) / bands)}" width="14" height="${px(h / bands + 0.5)}" fill="${viridis((i + 0.5) / bands)}"/>`;
  }
  for (const [v, t] of [[1, '100%'], [0.5, '50%'], [0, '0%']] as const) {
    s += `<text x="${px(x + 20)}" y="${px(top + h * (1 - v))}" dy="0.35em" font-size="10">${t}</text>`;
  }
  return s + '</g>';
}

export interface ScatterPoint {
  label: string;
  x: number;
  y: number;
  /** Points of one group share a colour and a legend entry (e.g. the task, or the architecture). */
  group: string;
}

export interface ScatterOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  points: readonly ScatterPoint[];
  /** The reference point (the base model), drawn as a diamond with dashed guides. */
  base?: { label?: string; x: number; y: number };
  /** Prints both axes as percentages of fractions (default false). */
  percent?: boolean;
  width?: number;
  height?: number;
}

/** [min, max] of vs widened by 5 % of the span on each side, so no point sits on an axis line. */
function padded(vs: readonly number[]): [number, number] {
  const lo = Math.min(...vs);
  const hi = Math.max(...vs);
  return [lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05];
}

/** Labelled points coloured by group, an optional base point, and a legend on the right. */
export function scatterChart(o: ScatterOptions): string {
  const title = text('scatterChart: title', o.title);
  const points = nonEmpty('scatterChart: points', o.points, 'point');
  points.forEach((p, i) => {
    text(`scatterChart: points[${i}].label`, p.label);
    text(`scatterChart: points[${i}].group`, p.group);
    finiteNumber(`scatterChart: points[${i}].x`, p.x);
    finiteNumber(`scatterChart: points[${i}].y`, p.y);
  });
  if (o.base) {
    finiteNumber('scatterChart: base.x', o.base.x);
    finiteNumber('scatterChart: base.y', o.base.y);
  }
  const groups = [...new Set(points.map((p) => p.group))];
  const baseLabel = o.base?.label ?? 'base';
  const names = [...groups, ...(o.base ? [baseLabel] : [])];
  const width = o.width ?? 640;
  const height = o.height ?? 420;
  const legendWidth = 40 + Math.max(...names.map((n) => textWidth(n, 11)));
  const area = { left: 64, top: 36, width: width - 64 - legendWidth - 16, height: height - 36 - 52 };
  if (area.width < 80 || area.height < 60) throw new Error(`scatterChart: width ${width} × height ${height} leaves no room for the plot`);
  const all = o.base ? [...points, o.base] : points;
  const xTicks = niceTicks(...padded(all.map((p) => p.x)), 5);
  const yTicks = niceTicks(...padded(all.map((p) => p.y)), 5);
  const percent = o.percent ?? false;
  const ax = axes({ area, xTicks, yTicks, xLabel: o.xLabel, yLabel: o.yLabel, xPercent: percent, yPercent: percent });
  let body = ax.svg;
  const colour = (g: string): string => PALETTE[groups.indexOf(g) % PALETTE.length]!;
  const fx = (v: number): string => (percent ? `${(v * 100).toFixed(1)}%` : v.toPrecision(4));
  if (o.base) {
    const bx = ax.x(o.base.x);
    const by = ax.y(o.base.y);
    body += `<g class="base"><path d="M${px(bx)} ${px(area.top)}V${px(area.top + area.height)}M${px(area.left)} ${px(by)}H${px(area.left + area.width)}" stroke="#888888" stroke-dasharray="4 3" fill="none"/>`;
    body += `<path d="${diamond(bx, by, 6)}" fill="#333333"><title>${escapeXml(`${baseLabel}: ${fx(o.base.x)}, ${fx(o.base.y)}`)}</title></path></g>`;
  }
  for (const p of points) {
    const cx = ax.x(p.x);
    const cy = ax.y(p.y);
    const anchor = cx > area.left + area.width * 0.75 ? 'end' : 'start';
    body += `<g class="point" data-group="${escapeXml(p.group)}"><circle cx="${px(cx)}" cy="${px(cy)}" r="5" fill="${colour(p.group)}" fill-opacity="0.85">`;
    body += `<title>${escapeXml(`${p.label} (${p.group}): ${fx(p.x)}, ${fx(p.y)}`)}</title></circle>`;
    body += `<text x="${px(anchor === 'start' ? cx + 8 : cx - 8)}" y="${px(cy)}" dy="-0.45em" text-anchor="${anchor}" font-size="10">${escapeXml(p.label)}</text></g>`;
  }
  const entries: { name: string; color: string; mark: 'dot' | 'diamond' }[] = groups.map((g) => ({ name: g, color: colour(g), mark: 'dot' }));
  if (o.base) entries.push({ name: baseLabel, color: '#333333', mark: 'diamond' });
  body += legend(area.left + area.width + 20, area.top + 8, entries);
  return svgDocument(width, height, title, body);
}
