/**
 * The CLI's progress bar (cli-progress) for long runs: step count, loss, samples/s and ETA, on
 * stderr, only when stderr is a TTY, so piped and CI output stays clean (the caller prints the
 * result, or JSON lines with --json).
 */
import { SingleBar } from 'cli-progress';

export interface Progress {
  update(step: number, values: { loss: number; sps: number }): void;
  stop(): void;
}

export function startProgress(label: string, total: number, stream: NodeJS.WriteStream = process.stderr): Progress | null {
  if (!stream.isTTY) return null;
  const bar = new SingleBar({
    stream,
    format: `${label} |{bar}| {value}/{total} steps | loss {loss} | {sps} samples/s | ETA {eta_formatted}`,
    barsize: 24,
    hideCursor: true,
    etaBuffer: 20,
  });
  bar.start(total, 0, { loss: '-', sps: '-' });
  return {
    update: (step, v) => bar.update(step, { loss: v.loss.toFixed(4), sps: v.sps.toFixed(1) }),
    stop: () => bar.stop(),
  };
}
