/**
 * Size-bucketed reuse of GPU buffers with accounting of what is live.
 *
 * Requests are rounded up to a bucket (256-byte steps up to 64 KiB, then four buckets per power of
 * two, so at most ~19 % slack) and served from that bucket's free list when possible. Released
 * buffers are not reusable until the work already recorded against them has been submitted: the
 * runtime holds them back (`deferRelease`) and hands them over on submit (`onSubmit`), because a
 * `queue.writeBuffer` into a reused buffer would otherwise land before earlier, unsubmitted reads.
 */
import { LimitError } from './errors.js';

/** A pooled GPU buffer. `size` is what was asked for; `capacity` what was allocated. */
export class GpuBuffer {
  /** @internal */ released = false;
  constructor(
    readonly buffer: GPUBuffer,
    readonly size: number,
    readonly capacity: number,
    readonly usage: number,
  ) {}
  get isReleased(): boolean {
    return this.released;
  }
}

export interface PoolStats {
  /** Buffers handed out and not yet released. */
  liveBuffers: number;
  /** Bytes of capacity held by live buffers. */
  liveBytes: number;
  /** Highest liveBytes since creation or the last resetPeak(). */
  peakLiveBytes: number;
  /** Buffers kept for reuse (free or waiting for a submit). */
  pooledBuffers: number;
  pooledBytes: number;
  /** Buffers ever created by the pool (a measure of reuse). */
  created: number;
}

const SMALL_STEP = 256;
const SMALL_MAX = 64 * 1024;

/** The allocation size serving a request of `bytes`. */
export function bucketSize(bytes: number): number {
  const b = Math.max(bytes, 4);
  if (b <= SMALL_MAX) return Math.ceil(b / SMALL_STEP) * SMALL_STEP;
  const octave = 2 ** Math.floor(Math.log2(b));
  const step = octave / 4;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private readonly free = new Map<number, GPUBuffer[]>();
  private deferred: GpuBuffer[] = [];
  private live = 0;
  private liveCap = 0;
  private peakCap = 0;
  private pooled = 0;
  private pooledCap = 0;
  private created = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly usage: number,
    private readonly maxBufferSize: number,
    private readonly label: string,
  ) {}

  acquire(bytes: number): GpuBuffer {
    if (!Number.isFinite(bytes) || bytes < 0) throw new Error(`${this.label}: invalid buffer size ${bytes}`);
    const capacity = bucketSize(bytes);
    if (bytes > this.maxBufferSize) {
      throw new LimitError('maxBufferSize', bytes, this.maxBufferSize, `${this.label} buffer of ${bytes} bytes`);
    }
    const cap = Math.min(capacity, this.maxBufferSize);
    let buffer = this.free.get(cap)?.pop();
    if (buffer) {
      this.pooled--;
      this.pooledCap -= cap;
    } else {
      buffer = this.device.createBuffer({ size: cap, usage: this.usage, label: this.label });
      this.created++;
    }
    this.live++;
    this.liveCap += cap;
    if (this.liveCap > this.peakCap) this.peakCap = this.liveCap;
    return new GpuBuffer(buffer, bytes, cap, this.usage);
  }

  /** Returns a buffer for reuse. With `pendingWork`, it waits for the next submit (see file header). */
  release(buf: GpuBuffer, pendingWork: boolean): void {
    if (buf.released) throw new Error(`${this.label}: buffer released twice`);
    buf.released = true;
    this.live--;
    this.liveCap -= buf.capacity;
    this.pooled++;
    this.pooledCap += buf.capacity;
    if (pendingWork) this.deferred.push(buf);
    else this.makeFree(buf);
  }

  /** Everything recorded so far has been submitted: deferred buffers become reusable. */
  onSubmit(): void {
    const d = this.deferred;
    this.deferred = [];
    for (const buf of d) this.makeFree(buf);
  }

  /** Destroys all free buffers (live ones are untouched). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.pooled--;
        this.pooledCap -= b.size;
        b.destroy();
      }
    }
    this.free.clear();
  }

  /** Starts a new peak measurement from the current live bytes. */
  resetPeak(): void {
    this.peakCap = this.liveCap;
  }

  stats(): PoolStats {
    return {
      liveBuffers: this.live,
      liveBytes: this.liveCap,
      peakLiveBytes: this.peakCap,
      pooledBuffers: this.pooled,
      pooledBytes: this.pooledCap,
      created: this.created,
    };
  }

  private makeFree(buf: GpuBuffer): void {
    let list = this.free.get(buf.capacity);
    if (!list) this.free.set(buf.capacity, (list = []));
    list.push(buf.buffer);
  }
}
