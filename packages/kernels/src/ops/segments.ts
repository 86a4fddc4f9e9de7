/**
 * Multi-tensor layout: many parameter tensors packed into one flat f32 arena so a single dispatch
 * can update all of them (PyTorch's fused multi-tensor apply, under WebGPU's limit of a few storage
 * bindings per kernel).
 *
 * Tensor t occupies arena[offsets[t] .. offsets[t] + lengths[t]). Offsets are multiples of
 * SEGMENT_ALIGN elements (256 bytes = minStorageBufferOffsetAlignment), so each tensor can also be
 * bound on its own as a buffer range. Work is split into chunks of `chunkSize` elements that never
 * straddle two tensors; workgroup w handles chunk w, described by the chunk table:
 *   chunks[2w] = tensor index t, chunks[2w + 1] = first element of the chunk (arena index).
 * The segment table holds, per tensor, `segments[2t] = offset`, `segments[2t + 1] = length`.
 * Padding elements between tensors belong to no chunk and are never touched.
 */
import type { GpuBuffer } from '../runtime/buffer-pool.js';
import type { Runtime } from '../runtime/runtime.js';

export const SEGMENT_ALIGN = 64;

export interface SegmentLayout {
  /** Element offset of each tensor in the arena. */
  readonly offsets: readonly number[];
  readonly lengths: readonly number[];
  /** Arena length in elements (including alignment padding). */
  readonly arenaLength: number;
  readonly chunkSize: number;
  /** Number of chunks (= workgroups of a multi-tensor dispatch). */
  readonly chunkCount: number;
}

export interface SegmentTable extends SegmentLayout {
  /** u32 (T, 2): offset, length per tensor. */
  readonly segments: GpuBuffer;
  /** u32 (chunkCount, 2): tensor index, first arena element per chunk. */
  readonly chunks: GpuBuffer;
}

/** Computes where each tensor goes and how the work is chunked (host only; no GPU). */
export function segmentLayout(lengths: readonly number[], chunkSize = 4096): SegmentLayout {
  if (!Number.isInteger(chunkSize) || chunkSize <= 0 || chunkSize % 4 !== 0) {
    throw new Error(`segmentLayout: chunkSize must be a positive multiple of 4, got ${chunkSize}`);
  }
  const offsets: number[] = [];
  let at = 0;
  let chunkCount = 0;
  for (const [t, len] of lengths.entries()) {
    if (!Number.isInteger(len) || len < 0) throw new Error(`segmentLayout: tensor ${t} has invalid length ${len}`);
    offsets.push(at);
    at += Math.ceil(len / SEGMENT_ALIGN) * SEGMENT_ALIGN;
    chunkCount += Math.ceil(len / chunkSize);
  }
  return { offsets, lengths: [...lengths], arenaLength: at, chunkSize, chunkCount };
}

/** Uploads the segment and chunk tables for `lengths`. Release with `releaseSegments`. */
export function createSegmentTable(rt: Runtime, lengths: readonly number[], chunkSize = 4096): SegmentTable {
  const layout = segmentLayout(lengths, chunkSize);
  const seg = new Uint32Array(Math.max(2, 2 * lengths.length));
  const chunks = new Uint32Array(Math.max(2, 2 * layout.chunkCount));
  let c = 0;
  layout.offsets.forEach((off, t) => {
    const len = layout.lengths[t]!;
    seg[2 * t] = off;
    seg[2 * t + 1] = len;
    for (let s = 0; s < len; s += chunkSize) {
      chunks[2 * c] = t;
      chunks[2 * c + 1] = off + s;
      c++;
    }
  });
  return { ...layout, segments: rt.upload(seg), chunks: rt.upload(chunks) };
}

export function releaseSegments(rt: Runtime, table: SegmentTable): void {
  rt.release(table.segments);
  rt.release(table.chunks);
}
