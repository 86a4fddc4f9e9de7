import { encode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import { decodePng, encodePng, fromModelInput, padCenter, resize, toModelInput, type RgbImage } from './image.js';

const img = (width: number, height: number, channels: 1 | 3 | 4, values: number[]): RgbImage => ({
  width,
  height,
  channels,
  data: Uint8Array.from(values),
});

describe('PNG decode/encode', () => {
  it('round-trips gray, RGB and RGBA exactly', () => {
    for (const channels of [1, 3, 4] as const) {
      const data = Uint8Array.from({ length: 5 * 3 * channels }, (_, i) => (i * 37 + channels) % 256);
      const back = decodePng(encodePng({ width: 5, height: 3, channels, data }));
      expect(back).toEqual({ width: 5, height: 3, channels, data });
    }
  });

  it('reduces 16-bit, low-depth gray, gray+alpha and palette images to 8-bit RgbImage', () => {
    const g16 = decodePng(encode({ width: 3, height: 1, channels: 1, depth: 16, data: Uint16Array.from([65535, 257, 0]) }));
    expect(g16).toEqual(img(3, 1, 1, [255, 1, 0]));
    // 1-bit rows are byte-padded: row 0 = 1 0 1, row 1 = 0 1 0.
    const g1 = decodePng(encode({ width: 3, height: 2, channels: 1, depth: 1, data: Uint8Array.from([0b10100000, 0b01000000]) }));
    expect(g1).toEqual(img(3, 2, 1, [255, 0, 255, 0, 255, 0]));
    const g2 = decodePng(encode({ width: 4, height: 1, channels: 1, depth: 2, data: Uint8Array.from([0b00011011]) }));
    expect(g2).toEqual(img(4, 1, 1, [0, 85, 170, 255]));
    const ga = decodePng(encode({ width: 1, height: 1, channels: 2, depth: 8, data: Uint8Array.from([9, 200]) }));
    expect(ga).toEqual(img(1, 1, 4, [9, 9, 9, 200]));
    const palette = [[255, 0, 0], [0, 0, 255], [1, 2, 3]];
    const pal = decodePng(encode({ width: 3, height: 1, channels: 1, depth: 4, data: Uint8Array.from([0x21, 0x00]), palette }));
    expect(pal).toEqual(img(3, 1, 3, [1, 2, 3, 0, 0, 255, 255, 0, 0]));
  });

  it('names the problem with bad bytes and bad images', () => {
    expect(() => decodePng(new TextEncoder().encode('GIF89a, not a png'))).toThrow(/not a PNG.*47 49 46 38/);
    expect(() => decodePng(new Uint8Array(3))).toThrow(/not a PNG/);
    const good = encodePng(img(2, 2, 3, new Array(12).fill(7)));
    expect(() => decodePng(good.subarray(0, 40))).toThrow(/corrupt or unsupported PNG/);
    expect(() => encodePng(img(2, 2, 3, [1, 2, 3]))).toThrow(/data length 3 does not match 2×2×3 = 12/);
    expect(() => encodePng({ width: 1, height: 1, channels: 2 as 3, data: new Uint8Array(2) })).toThrow(/channels must be 1, 3 or 4, got 2/);
  });
});

describe('resize', () => {
  it('bilinear upsampling uses half-pixel centres and clamps at the edges', () => {
    // Output x=i samples source (i + ½)/2 − ½ = −¼, ¼, ¾, 1¼ → clamp → 0, 63.75, 191.25, 255.
    expect(resize(img(2, 1, 1, [0, 255]), 4, 1).data).toEqual(Uint8Array.from([0, 64, 191, 255]));
    // Separable: the same along y, independently for each RGB channel.
    const col = resize(img(1, 2, 3, [0, 100, 200, 200, 100, 0]), 1, 4);
    expect(Array.from(col.data)).toEqual([0, 100, 200, 50, 100, 150, 150, 100, 50, 200, 100, 0]);
  });

  it('2× bilinear shrink averages pixel pairs; a linear ramp stays linear', () => {
    const ramp = img(8, 1, 1, [0, 10, 20, 30, 40, 50, 60, 70]);
    expect(Array.from(resize(ramp, 4, 1).data)).toEqual([5, 25, 45, 65]);
  });

  it('shrinking by more than 2× averages the covered area', () => {
    // 8×8 made of four constant 4×4 blocks → 2×2 of the block values.
    const blocks = Array.from({ length: 64 }, (_, i) => ((i % 8) < 4 ? 0 : 100) + (i < 32 ? 0 : 40));
    expect(Array.from(resize(img(8, 8, 1, blocks), 2, 2).data)).toEqual([0, 100, 40, 140]);
    // 1×9 → 1×3 (3×): thirds averaged; a single bright pixel spreads its mass over one output.
    expect(Array.from(resize(img(9, 1, 1, [0, 0, 0, 90, 90, 90, 0, 0, 255]), 3, 1).data)).toEqual([0, 90, 85]);
    // Non-integer 2.5×: output 0 covers source [0, 2.5) → (a + b + ½c)/2.5.
    expect(resize(img(5, 1, 1, [100, 100, 50, 0, 0]), 2, 1).data[0]).toBe(90);
  });

  it('keeps channels, copies on identity, rejects bad sizes', () => {
    const rgba = img(2, 2, 4, Array.from({ length: 16 }, (_, i) => i * 10));
    const same = resize(rgba, 2, 2);
    expect(same).toEqual(rgba);
    expect(same.data).not.toBe(rgba.data);
    expect(resize(rgba, 3, 5).channels).toBe(4);
    expect(() => resize(rgba, 0, 2)).toThrow(/width must be a positive integer, got 0/);
    expect(() => resize(rgba, 2, 1.5)).toThrow(/height must be a positive integer, got 1.5/);
  });
});

describe('model input', () => {
  it('gray is replicated into CHW and normalised per channel', () => {
    const gray = img(2, 2, 1, [0, 51, 102, 255]);
    const x = toModelInput(gray, { size: 2, mean: [0, 0.1, 0.2], std: [1, 0.5, 2] });
    const v = [0, 0.2, 0.4, 1];
    const want = [...v, ...v.map((u) => (u - 0.1) / 0.5), ...v.map((u) => (u - 0.2) / 2)];
    expect(x.length).toBe(12);
    want.forEach((w, i) => expect(x[i]).toBeCloseTo(w, 6));
  });

  it('RGB is split into planes, alpha composites over black, other sizes are resized', () => {
    const rgb = toModelInput(img(1, 1, 3, [255, 0, 51]), { size: 1 });
    expect(Array.from(rgb)).toEqual([1, 0, 0.2].map((u) => Math.fround(u)));
    const rgba = toModelInput(img(1, 1, 4, [255, 255, 255, 51]), { size: 1 });
    rgba.forEach((u) => expect(u).toBeCloseTo(0.2, 6));
    const up = toModelInput(img(2, 1, 1, [0, 255]), { size: 4 });
    expect(up.length).toBe(48);
    expect(Math.round(up[1]! * 255)).toBe(64); // row 0, column 1 of the bilinear result
  });

  it('fromModelInput inverts toModelInput', () => {
    const src = img(3, 3, 3, Array.from({ length: 27 }, (_, i) => (i * 29) % 256));
    const opts = { size: 3, mean: [0.5, 0.4, 0.3] as const, std: 0.25 };
    expect(fromModelInput(toModelInput(src, opts), opts)).toEqual(src);
  });

  it('rejects wrong sizes, channels and statistics by name', () => {
    expect(() => fromModelInput(new Float32Array(10), { size: 2 })).toThrow(/length 10 does not match 3×2×2 = 12/);
    expect(() => toModelInput(img(1, 1, 1, [0]), { size: 0 })).toThrow(/size must be a positive integer, got 0/);
    expect(() => toModelInput(img(1, 1, 1, [0]), { size: 1, std: 0 })).toThrow(/std must be > 0/);
    expect(() => toModelInput(img(1, 1, 1, [0]), { size: 1, mean: [1, 2] as never })).toThrow(/mean must be/);
    expect(() => toModelInput({ width: 1, height: 1, channels: 3, data: new Float32Array(3) as never }, { size: 1 })).toThrow(
      /data must be a Uint8Array/,
    );
  });

  it('padCenter centres with the odd pixel on the right/bottom', () => {
    const p = padCenter(img(1, 1, 1, [9]), 4, 3, 1);
    expect(Array.from(p.data)).toEqual([1, 1, 1, 1, 1, 9, 1, 1, 1, 1, 1, 1]);
    expect(() => padCenter(img(2, 2, 1, [0, 0, 0, 0]), 1, 4)).toThrow(/target 1×4 is smaller than the image 2×2/);
  });
});
