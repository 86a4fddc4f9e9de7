/**
 * The live loss curve as inline SVG: one polyline over (step, loss), x from 1 to the run's step count
 * (fixed when the run starts, so the curve grows left to right), y linear from 0 to the largest loss
 * rounded up to a "nice" value, with a few gridlines. Redrawn whole on every step; a run has at most
 * 1000 points, so there is nothing to gain from incremental updates.
 *
 * Non-goals: zoom, log scale, several runs on one chart.
 */

const W = 480;
const H = 220;
const PAD = { left: 44, right: 12, top: 12, bottom: 28 };
const SVG_NS = 'http://www.w3.org/2000/svg';

/** The smallest of 1, 2, 5 × 10^k that is ≥ x (x > 0). */
export function niceCeil(x: number): number {
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

function el(name: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Draws `losses` (loss of step i + 1 at index i) into `svg` for a run of `steps` steps. */
export function drawLossChart(svg: SVGSVGElement, losses: readonly number[], steps: number): void {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const top = niceCeil(Math.max(1e-3, ...losses));
  const x = (step: number) => PAD.left + ((step - 1) / Math.max(1, steps - 1)) * (W - PAD.left - PAD.right);
  const y = (loss: number) => H - PAD.bottom - (loss / top) * (H - PAD.top - PAD.bottom);
  for (let k = 0; k <= 4; k++) {
    const v = (top * k) / 4;
    svg.append(el('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(el('text', { x: PAD.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, Number(v.toPrecision(3)).toString()));
  }
  svg.append(el('text', { x: PAD.left, y: H - 8 }, 'step 1'));
  svg.append(el('text', { x: W - PAD.right, y: H - 8, 'text-anchor': 'end' }, `step ${steps}`));
  if (losses.length === 0) return;
  const points = losses.map((l, i) => `${x(i + 1).toFixed(1)},${y(l).toFixed(1)}`).join(' ');
  svg.append(el('polyline', { points, class: 'curve' }));
  const last = losses.length;
  svg.append(el('circle', { cx: x(last), cy: y(losses[last - 1]!), r: 3, class: 'dot' }));
}
