/**
 * Writes the tune and bench reports to a directory, Node only:
 *   writeTuneReport   report.html + loss.png, tu.png (+ masks.png for masked methods)
 *   writeBenchReport  bench.html + bench.md + scatter-<task>.png per task
 * Every chart is rendered to PNG before the first file is written, so a missing font or a bad
 * input leaves the directory as it was. Each file is written to a temporary name in the same
 * directory and renamed over the target: a reader (a browser reloading the page, CI uploading
 * the folder) sees the old file or the new one, never half of one.
 *
 * Non-goals: locking against concurrent writers (the last rename wins), removing PNGs of charts
 * an earlier run had and this one has not, fsync.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs.node.js';
import { rasterizeSvg, type RasterOptions } from './png.node.js';
import { renderBenchReport, renderTuneReport, type BenchReportInput, type ReportChart, type TuneReportInput } from './report.js';

export interface WrittenReport {
  /** Paths of the files written, the page first. */
  files: string[];
}

const SAFE_NAME = /^[A-Za-z0-9._-]+$/;

async function writeReportFiles(dir: string, pages: [string, string][], charts: readonly ReportChart[], options: RasterOptions): Promise<WrittenReport> {
  if (typeof dir !== 'string' || dir === '') throw new Error(`writeReport: dir must be a directory path, got ${JSON.stringify(dir)}`);
  const pngs = charts.map((c) => {
    if (!SAFE_NAME.test(c.name) || c.name.startsWith('.')) throw new Error(`writeReport: chart name '${c.name}' is not a safe file name`);
    return [`${c.name}.png`, rasterizeSvg(c.svg, options).png] as const;
  });
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const [name, data] of [...pages, ...pngs]) {
    const path = join(dir, name);
    try {
      await writeFileAtomic(path, data);
    } catch (e) {
      throw new Error(`writeReport: ${(e as Error).message}`, { cause: e });
    }
    files.push(path);
  }
  return { files };
}

/** Renders the tune report and writes report.html and one PNG per chart into `dir` (created if needed). */
export async function writeTuneReport(dir: string, input: TuneReportInput, options: RasterOptions = {}): Promise<WrittenReport> {
  const { html, charts } = renderTuneReport(input);
  return writeReportFiles(dir, [['report.html', html]], charts, options);
}

/** Renders the bench report and writes bench.html, bench.md and one PNG per task into `dir`. */
export async function writeBenchReport(dir: string, input: BenchReportInput, options: RasterOptions = {}): Promise<WrittenReport> {
  const { html, markdown, charts } = renderBenchReport(input);
  return writeReportFiles(dir, [['bench.html', html], ['bench.md', markdown]], charts, options);
}
