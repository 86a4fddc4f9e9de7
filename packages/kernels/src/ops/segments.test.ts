import { describe, expect, it } from 'vitest';
import { SEGMENT_ALIGN, segmentLayout } from './segments.js';

describe('segmentLayout', () => {
  it('aligns offsets and never lets a chunk straddle two tensors', () => {
    const l = segmentLayout([5, 0, 130, 4096 * 2 + 1], 4096);
    expect(l.offsets).toEqual([0, 64, 64, 256]);
    expect(l.offsets.every((o) => o % SEGMENT_ALIGN === 0)).toBe(true);
    expect(l.chunkCount).toBe(1 + 0 + 1 + 3);
    expect(l.arenaLength).toBe(256 + Math.ceil((4096 * 2 + 1) / 64) * 64);
  });
  it('rejects bad lengths and chunk sizes', () => {
    expect(() => segmentLayout([-1])).toThrow(/tensor 0 has invalid length -1/);
    expect(() => segmentLayout([4], 6)).toThrow(/chunkSize/);
  });
});
