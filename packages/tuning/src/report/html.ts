/**
 * The page shell, tables and number formats shared by the tune and bench reports (report.ts).
 *
 * A page is one self-contained HTML5 file: inline CSS, inline SVG charts, no script, no external
 * asset, so it opens from disk, attaches to an issue and archives as is. Every string from the
 * input goes through escapeHtml (cells, headings, attributes); markdown cells go through
 * escapeMarkdown, which also entity-escapes < > & because markdown viewers render inline HTML.
 *
 * Number formats (scores are fractions in [0, 1], printed as percentages with one decimal):
 *   T, U, H       42.3        E, F, O   +5.1 / -2.0 (signed: a gain or a loss against the base)
 *   trainable %   0.52 (2 significant digits under 0.01)      bytes  B / KiB / MiB / GiB
 *
 * Non-goals: theming, sortable tables, client-side interactivity.
 */
import { escapeXml } from './svg.js';

/** HTML and XML share the five escapes. */
export const escapeHtml = escapeXml;

const CSS = `
:root { color-scheme: light; }
body { font-family: 'DejaVu Sans', Verdana, system-ui, sans-serif; color: #1d1d1f; background: #fff;
  max-width: 1040px; margin: 2rem auto; padding: 0 1.25rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .25rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.meta { color: #555; margin-top: 0; }
code, pre { font-family: 'DejaVu Sans Mono', Menlo, Consolas, monospace; font-size: .9em; }
pre { background: #f6f6f6; padding: .75rem; overflow-x: auto; border-radius: 4px; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #ddd; padding: .3rem .6rem; vertical-align: top; }
th { background: #f3f3f3; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.best td { font-weight: bold; }
.ok { color: #1a7f37; } .bad { color: #c62828; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: .9rem; }
`;

/** A complete HTML document around `body` (already escaped HTML). */
export function htmlPage(title: string, body: string): string {
  return (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n' +
    `<title>${escapeHtml(title)}</title>\n<style>${CSS}</style>\n</head>\n<body>\n${body}\n</body>\n</html>\n`
  );
}

/** A table cell: text is escaped here; `num` right-aligns it. */
export interface Cell {
  text: string;
  num?: boolean;
  /** Extra CSS class (e.g. 'ok', 'bad'). */
  cls?: string;
}

/** An HTML table from header labels and rows of cells; rows flagged `best` are bold. */
export function htmlTable(headers: readonly string[], rows: readonly { cells: readonly Cell[]; best?: boolean }[]): string {
  const head = '<tr>' + headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('') + '</tr>';
  const body = rows
    .map((r) => {
      const cells = r.cells.map((c) => {
        const cls = [c.num ? 'num' : '', c.cls ?? ''].filter(Boolean).join(' ');
        return `<td${cls ? ` class="${cls}"` : ''}>${escapeHtml(c.text)}</td>`;
      });
      return `<tr${r.best ? ' class="best"' : ''}>${cells.join('')}</tr>`;
    })
    .join('\n');
  return `<table>\n<thead>${head}</thead>\n<tbody>\n${body}\n</tbody>\n</table>`;
}

/** A <figure> holding an inline SVG chart and its caption. */
export const figure = (svg: string, caption: string): string => `<figure>${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;

/** Escapes text for a markdown table cell or paragraph (file comment). */
export function escapeMarkdown(s: string): string {
  return String(s)
    .replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!)
    .replace(/[\\`*_[\]|#]/g, (c) => '\\' + c)
    .replace(/\r?\n/g, ' ');
}

/** A GitHub-flavoured markdown table; `numeric` columns are right-aligned, `bold` rows in bold. */
export function markdownTable(headers: readonly string[], numeric: readonly boolean[], rows: readonly { cells: readonly string[]; bold?: boolean }[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  const cell = (c: string, bold: boolean): string => (bold && c !== '' ? `**${escapeMarkdown(c)}**` : escapeMarkdown(c));
  return [line(headers.map(escapeMarkdown)), line(headers.map((_, i) => (numeric[i] ? '---:' : '---'))), ...rows.map((r) => line(r.cells.map((c) => cell(c, r.bold ?? false))))].join('\n');
}

/** A fenced code block whose fence is longer than any backtick run in `code`. */
export function markdownCode(code: string, lang = ''): string {
  const longest = Math.max(0, ...(code.match(/`+/g) ?? []).map((m) => m.length));
  const fence = '`'.repeat(Math.max(3, longest + 1));
  return `${fence}${lang}\n${code}\n${fence}`;
}

/** A score fraction as a percentage with one decimal: 0.4234 → '42.3'. */
export const pct = (v: number): string => (v * 100).toFixed(1);

/** A signed score difference as a percentage: 0.051 → '+5.1', -0.02 → '-2.0'. */
export const signedPct = (v: number): string => {
  const s = (v * 100).toFixed(1);
  return v >= 0 && !s.startsWith('-') ? `+${s}` : s === '-0.0' ? '+0.0' : s;
};

/** A percentage already in [0, 100]: two decimals, two significant digits below 0.01. */
export const percentValue = (p: number): string => (p !== 0 && Math.abs(p) < 0.01 ? p.toPrecision(2) : p.toFixed(2));

/** Bytes in binary units. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

/** An integer with thousands separators: 1234567 → '1,234,567'. */
export const formatCount = (n: number): string => Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');

/** Seconds with three significant digits (0.0123, 1.23, 123). */
export const formatSeconds = (s: number): string => (s >= 100 ? s.toFixed(0) : s.toPrecision(3));
