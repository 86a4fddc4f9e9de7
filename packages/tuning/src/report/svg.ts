/**
 * The drawing primitives under keel's report charts (charts.ts): XML escaping, "nice" axis ticks,
 * linear scales, a categorical palette, a perceptual colour ramp, axes, and the input checks that
 * name the offending field. Pure string building, no DOM and no Node built-ins, so the same code
 * draws the charts in `keel tune`, `keel bench` and the browser example.
 *
 * Ticks: for a data range [lo, hi] and a wanted count n, the step is the smallest of
 * {1, 2, 5}·10^k that is ≥ (hi − lo)/n, and the ticks are the multiples k·step from floor(lo/step)
 * to ceil(hi/step), so the first tick is ≤ lo and the last ≥ hi: the axis always covers the data.
 * A degenerate range (lo = hi) is widened by max(|lo|·10 %, 1) on each side first.
 *
 * Colour ramp: viridis (perceptually uniform, readable in greyscale and by most colour-blind
 * readers), piecewise-linear in sRGB between ten anchors sampled from the published map.
 *
 * Text width: DejaVu Sans averages about 0.6 em per glyph; layout reserves room with that estimate.
 *
 * Non-goals: text shaping or exact glyph metrics, log scales, time axes, interactivity.
 */

/** Font stack of every chart: DejaVu Sans is what the PNG rasterizer loads (png.node.ts). */
export const FONT_FAMILY = "'DejaVu Sans', Verdana, Arial, sans-serif";

/** Tableau 10, a categorical palette whose neighbours stay distinct for most colour-blind readers. */
export const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'] as const;

const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'] as const;

/** Escapes the five XML-special characters; safe in element text and in quoted attributes (HTML too). */
export function escapeXml(s: string): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Throws `<field> must be a finite number, got <v>` unless v is a finite number. */
export function finiteNumber(field: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${field} must be a finite number, got ${String(v)}`);
  return v;
}

/** A finite number in [0, 1] (a score or a density). */
export function fraction(field: string, v: unknown): number {
  const x = finiteNumber(field, v);
  if (x < 0 || x > 1) throw new Error(`${field} must be a fraction in [0, 1], got ${x}`);
  return x;
}

/** Throws `<field> must be a string` unless v is one. */
export function text(field: string, v: unknown): string {
  if (typeof v !== 'string') throw new Error(`${field} must be a string, got ${v === null ? 'null' : typeof v}`);
  return v;
}

/** Throws `<field> must have at least one <what>` on a missing or empty array. */
export function nonEmpty<T>(field: string, v: readonly T[] | undefined, what = 'entry'): readonly T[] {
  if (!Array.isArray(v)) throw new Error(`${field} must be an array, got ${v === null ? 'null' : typeof v}`);
  if (v.length === 0) throw new Error(`${field} must have at least one ${what}`);
  return v;
}

/** Rounds away binary noise (0.1 + 0.2) so tick values print and compare cleanly. */
const clean = (v: number): number => parseFloat(v.toPrecision(12));

/** Tick values covering [lo, hi] at a 1-2-5 step, about `count` intervals (file comment). */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  finiteNumber('niceTicks: lo', lo);
  finiteNumber('niceTicks: hi', hi);
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`niceTicks: count must be a positive integer, got ${count}`);
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === hi) {
    const pad = Math.max(Math.abs(lo) * 0.1, 1);
    lo -= pad;
    hi += pad;
  }
  const step = niceStep((hi - lo) / count);
  const k0 = Math.floor(clean(lo / step));
  const k1 = Math.ceil(clean(hi / step));
  const ticks: number[] = [];
  for (let k = k0; k <= k1; k++) ticks.push(clean(k * step));
  return ticks;
}

/** The smallest {1, 2, 5}·10^k that is ≥ raw. */
export function niceStep(raw: number): number {
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw * (1 - 1e-9)) return clean(m * mag);
  return clean(10 * mag);
}

/** Formats ticks spaced `step` apart with just enough decimals; `percent` prints v·100 and a %. */
export function tickFormatter(ticks: readonly number[], percent = false): (v: number) => string {
  const scale = percent ? 100 : 1;
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) * scale : 1;
  const decimals = Math.min(10, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
  return (v) => {
    const s = (v * scale).toFixed(decimals);
    return (/^-0(\.0*)?$/.test(s) ? s.slice(1) : s) + (percent ? '%' : '');
  };
}

/** Maps [d0, d1] linearly onto [r0, r1]. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): (v: number) => number {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** Viridis at t ∈ [0, 1] as #rrggbb (t is clamped). */
export function viridis(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  const a = hexRgb(VIRIDIS[i]!);
  const b = hexRgb(VIRIDIS[i + 1]!);
  return '#' + a.map((c, j) => Math.round(c + (b[j]! - c) * f).toString(16).padStart(2, '0')).join('');
}

function hexRgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Estimated rendered width of `s` at `size` px (file comment). */
export const textWidth = (s: string, size: number): number => s.length * size * 0.6;

/** Shortens `s` to at most `max` characters by cutting its middle (layer names differ at both ends). */
export function truncateMiddle(s: string, max: number): string {
  if (s.length <= max) return s;
  const head = Math.ceil((max - 1) / 2);
  return s.slice(0, head) + '…' + s.slice(s.length - (max - 1 - head));
}

/** Numbers in SVG attributes: two decimals are sub-pixel and keep the files small. */
export const px = (v: number): string => String(Math.round(v * 100) / 100);

/** A standalone SVG document with a white background, an accessible title and the chart's body. */
export function svgDocument(width: number, height: number, title: string, body: string): string {
  // Whole pixels, so a rasterization at an integer scale is exactly width·scale × height·scale.
  const w = String(Math.ceil(width));
  const h = String(Math.ceil(height));
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" ` +
    `font-family="${escapeXml(FONT_FAMILY)}" font-size="12">` +
    `<title>${escapeXml(title)}</title>` +
    `<rect width="${w}" height="${h}" fill="#ffffff"/>` +
    `<text class="chart-title" x="${px(width / 2)}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>` +
    body +
    `</svg>`
  );
}

export interface PlotArea {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface AxesOptions {
  area: PlotArea;
  xTicks: readonly number[];
  yTicks: readonly number[];
  xLabel: string;
  yLabel: string;
  xPercent?: boolean;
  yPercent?: boolean;
}

/**
 * Grid lines, both axes, their tick labels and titles. Each tick is a `<g class="tick x|y"
 * data-value="…">` so tests and tools can read the covered range back from the SVG.
 */
export function axes(o: AxesOptions): { svg: string; x: (v: number) => number; y: (v: number) => number } {
  const { left, top, width, height } = o.area;
  const x = linearScale(o.xTicks[0]!, o.xTicks[o.xTicks.length - 1]!, left, left + width);
  const y = linearScale(o.yTicks[0]!, o.yTicks[o.yTicks.length - 1]!, top + height, top);
  const fx = tickFormatter(o.xTicks, o.xPercent);
  const fy = tickFormatter(o.yTicks, o.yPercent);
  const bottom = top + height;
  let s = '';
  for (const v of o.yTicks) {
    const yy = px(y(v));
    s += `<g class="tick y" data-value="${v}"><line x1="${px(left)}" x2="${px(left + width)}" y1="${yy}" y2="${yy}" stroke="#e3e3e3"/>`;
    s += `<text x="${px(left - 6)}" y="${yy}" dy="0.35em" text-anchor="end" font-size="11" fill="#333333">${escapeXml(fy(v))}</text></g>`;
  }
  for (const v of o.xTicks) {
    const xx = px(x(v));
    s += `<g class="tick x" data-value="${v}"><line x1="${xx}" x2="${xx}" y1="${px(bottom)}" y2="${px(bottom + 5)}" stroke="#555555"/>`;
    s += `<text x="${xx}" y="${px(bottom + 18)}" text-anchor="middle" font-size="11" fill="#333333">${escapeXml(fx(v))}</text></g>`;
  }
  s += `<path d="M${px(left)} ${px(top)}V${px(bottom)}H${px(left + width)}" fill="none" stroke="#555555"/>`;
  s += `<text class="axis-label" x="${px(left + width / 2)}" y="${px(bottom + 36)}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`;
  const ly = px(top + height / 2);
  s += `<text class="axis-label" x="16" y="${ly}" transform="rotate(-90 16 ${ly})" text-anchor="middle">${escapeXml(o.yLabel)}</text>`;
  return { svg: s, x, y };
}

/** A vertical legend: one swatch (line, dot or diamond) and name per entry, starting at (x, y). */
export function legend(x: number, y: number, entries: readonly { name: string; color: string; mark: 'line' | 'dot' | 'diamond' }[]): string {
  let s = '<g class="legend">';
  entries.forEach((e, i) => {
    const cy = y + i * 18;
    if (e.mark === 'line') s += `<line x1="${px(x)}" x2="${px(x + 18)}" y1="${px(cy)}" y2="${px(cy)}" stroke="${e.color}" stroke-width="2.5"/>`;
    else if (e.mark === 'dot') s += `<circle cx="${px(x + 9)}" cy="${px(cy)}" r="4.5" fill="${e.color}"/>`;
    else s += `<path d="${diamond(x + 9, cy, 6)}" fill="${e.color}"/>`;
    s += `<text x="${px(x + 24)}" y="${px(cy)}" dy="0.35em" font-size="11">${escapeXml(e.name)}</text>`;
  });
  return s + '</g>';
}

/** Path data of a diamond of half-diagonal r centred at (cx, cy). */
export const diamond = (cx: number, cy: number, r: number): string =>
  `M${px(cx)} ${px(cy - r)}L${px(cx + r)} ${px(cy)}L${px(cx)} ${px(cy + r)}L${px(cx - r)} ${px(cy)}Z`;
