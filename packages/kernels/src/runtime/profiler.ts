/**
 * Per-kernel GPU time from timestamp queries: while profiling, every compute pass writes a begin
 * and an end timestamp; each submitted batch resolves its queries into a buffer that is read back
 * asynchronously, and the durations are summed by kernel name. Needs the 'timestamp-query'
 * feature. Used by benchmarks and to find where a training step spends its time, never by tests'
 * pass/fail logic (timings are not stable).
 *
 * Non-goals: timestamps inside passes, overlap analysis, copy timings.
 */

export interface KernelTime {
  kernel: string;
  dispatches: number;
  /** Summed GPU time of this kernel's passes, milliseconds. */
  ms: number;
}

const QUERY_CAPACITY = 2 * 512; // two timestamps per pass; the runtime submits at least every maxBatch passes

export class KernelProfiler {
  private readonly querySet: GPUQuerySet;
  private names: string[] = [];
  private readonly totals = new Map<string, { dispatches: number; ns: bigint }>();
  private readonly pending: Promise<void>[] = [];

  constructor(private readonly device: GPUDevice) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: QUERY_CAPACITY, label: 'keel profiler' });
  }

  /** Whether the current batch has room for another pass (the runtime flushes when not). */
  get full(): boolean {
    return 2 * (this.names.length + 1) > QUERY_CAPACITY;
  }

  /** The timestampWrites of the next pass, which runs `kernel`. */
  passWrites(kernel: string): GPUComputePassTimestampWrites {
    const i = this.names.length;
    this.names.push(kernel);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Records the resolve of this batch's queries into `encoder` (before it is finished). */
  resolve(encoder: GPUCommandEncoder): (() => void) | null {
    const names = this.names;
    if (names.length === 0) return null;
    this.names = [];
    const bytes = names.length * 16;
    const resolved = this.device.createBuffer({ size: bytes, usage: 0x200 /* QUERY_RESOLVE */ | 0x4 /* COPY_SRC */ });
    const staging = this.device.createBuffer({ size: bytes, usage: 0x1 /* MAP_READ */ | 0x8 /* COPY_DST */ });
    encoder.resolveQuerySet(this.querySet, 0, names.length * 2, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, bytes);
    // called after submit: read the timestamps when the GPU is done with them
    return () => {
      this.pending.push(
        staging.mapAsync(0x1 /* READ */).then(
          () => {
            const t = new BigInt64Array(staging.getMappedRange());
            names.forEach((name, i) => {
              const dt = t[2 * i + 1]! - t[2 * i]!;
              const entry = this.totals.get(name) ?? { dispatches: 0, ns: 0n };
              entry.dispatches++;
              if (dt > 0n) entry.ns += dt;
              this.totals.set(name, entry);
            });
            staging.unmap();
            staging.destroy();
            resolved.destroy();
          },
          () => {
            staging.destroy();
            resolved.destroy();
          },
        ),
      );
    };
  }

  /** Waits for every batch's timestamps and returns the totals, slowest kernel first. */
  async report(): Promise<KernelTime[]> {
    await Promise.all(this.pending.splice(0));
    return [...this.totals]
      .map(([kernel, t]) => ({ kernel, dispatches: t.dispatches, ms: Number(t.ns) / 1e6 }))
      .sort((a, b) => b.ms - a.ms);
  }

  destroy(): void {
    this.querySet.destroy();
  }
}
