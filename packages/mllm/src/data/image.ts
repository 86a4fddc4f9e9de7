/**
 * Images for the vision encoder: PNG decode/encode (fast-png, browser-safe), resizing, and the
 * conversion to and from the model's input tensor.
 *
 * Representation. `RgbImage` is 8-bit, interleaved, row-major: the value of channel c at column x,
 * row y is `data[(y·width + x)·channels + c]`, in 0..255. channels is 1 (gray), 3 (RGB) or 4 (RGBA,
 * straight — not premultiplied — alpha). Every decoded PNG is reduced to this form: 16-bit samples
 * are rounded to 8 bits, 1/2/4-bit gray is stretched to 0..255, gray+alpha becomes RGBA, palette
 * images become RGB or RGBA.
 *
 * Model input. A Float32Array of length 3·S·S in CHW order (S = `size`): element
 * [c·S·S + y·S + x] = (v/255 − mean[c]) / std[c]. Gray is replicated to the three channels, alpha
 * is composited over black (the synthetic world's background is dark too), and an image that is
 * not S×S is resized to S×S (aspect ratio is not kept; pad first with `padCenter` to keep it).
 *
 * Non-goals: colour management (gAMA/iCCP are ignored), colour-key transparency (tRNS on
 * gray/RGB images is ignored), animation (only the default image of an APNG), interlaced output.
 */
import { convertIndexedToRgb, decode, encode, hasPngSignature } from 'fast-png';

export interface RgbImage {
  width: number;
  height: number;
  /** 1 gray, 3 RGB, 4 RGBA (straight alpha). */
  channels: 1 | 3 | 4;
  /** HWC interleaved, 0..255, length width·height·channels. */
  data: Uint8Array;
}

/** Per-channel normalisation; a number applies to all three channels. */
export type ChannelStat = number | readonly [number, number, number];

export interface ModelInputOptions {
  /** Side S of the square model input in pixels. */
  size: number;
  /** Subtracted after scaling to [0, 1] (default 0). */
  mean?: ChannelStat;
  /** Divides after the mean is subtracted (default 1); must be > 0. */
  std?: ChannelStat;
}

/** Throws unless `img` is a well-formed RgbImage; `who` prefixes the message. */
export function checkImage(img: RgbImage, who: string): void {
  const { width, height, channels, data } = img;
  if (!Number.isInteger(width) || width < 1) throw new Error(`${who}: width must be a positive integer, got ${width}`);
  if (!Number.isInteger(height) || height < 1) throw new Error(`${who}: height must be a positive integer, got ${height}`);
  if (channels !== 1 && channels !== 3 && channels !== 4) {
    throw new Error(`${who}: channels must be 1, 3 or 4, got ${String(channels)}`);
  }
  if (!(data instanceof Uint8Array)) throw new Error(`${who}: data must be a Uint8Array (0..255), got ${Object.prototype.toString.call(data)}`);
  const want = width * height * channels;
  if (data.length !== want) {
    throw new Error(`${who}: data length ${data.length} does not match ${width}×${height}×${channels} = ${want}`);
  }
}

function checkSide(who: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${who}: ${name} must be a positive integer, got ${v}`);
}

/** Unpacks 1/2/4-bit samples (rows padded to whole bytes) and stretches them to 0..255. */
function unpackLowDepth(packed: Uint8Array, width: number, height: number, depth: 1 | 2 | 4): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const max = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = packed[y * rowBytes + (bit >> 3)]!;
      const v = (byte >> (8 - depth - (bit & 7))) & max;
      out[y * width + x] = Math.round((v * 255) / max);
    }
  }
  return out;
}

/** Decodes PNG bytes into an 8-bit RgbImage (see the file header for how each PNG kind maps). */
export function decodePng(bytes: Uint8Array): RgbImage {
  if (!(bytes instanceof Uint8Array)) throw new Error(`decodePng: bytes must be a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  if (bytes.length < 8 || !hasPngSignature(bytes)) {
    const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
    throw new Error(`decodePng: bytes are not a PNG (the first 8 bytes are [${head}], expected the signature [89 50 4e 47 0d 0a 1a 0a])`);
  }
  let png: ReturnType<typeof decode>;
  try {
    png = decode(bytes);
  } catch (e) {
    throw new Error(`decodePng: corrupt or unsupported PNG (${(e as Error).message})`, { cause: e });
  }
  const { width, height, depth } = png;
  const pixels = width * height;
  if (png.palette !== undefined && png.palette.length > 0) {
    const channels = png.palette[0]!.length;
    if (channels !== 3 && channels !== 4) throw new Error(`decodePng: palette entries have ${channels} components, expected 3 or 4`);
    return { width, height, channels, data: convertIndexedToRgb(png) };
  }
  let samples: Uint8Array;
  if (depth === 16) {
    // 65535 → 255: dividing by 257 maps the two ranges' ends onto each other exactly.
    samples = new Uint8Array(png.data.length);
    for (let i = 0; i < samples.length; i++) samples[i] = Math.round(png.data[i]! / 257);
  } else if (depth === 8) {
    samples = new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.length);
  } else {
    if (png.channels !== 1) throw new Error(`decodePng: ${depth}-bit samples with ${png.channels} channels are not valid PNG`);
    samples = unpackLowDepth(png.data as Uint8Array, width, height, depth);
  }
  switch (png.channels) {
    case 1:
    case 3:
    case 4:
      return { width, height, channels: png.channels, data: samples.slice(0, pixels * png.channels) };
    case 2: {
      // Gray+alpha → RGBA, so RgbImage needs no two-channel case.
      const data = new Uint8Array(pixels * 4);
      for (let i = 0; i < pixels; i++) {
        const g = samples[2 * i]!;
        data.set([g, g, g, samples[2 * i + 1]!], 4 * i);
      }
      return { width, height, channels: 4, data };
    }
    default:
      throw new Error(`decodePng: unsupported channel count ${png.channels}`);
  }
}

/** Encodes an RgbImage as an 8-bit PNG (gray, RGB or RGBA). */
export function encodePng(img: RgbImage): Uint8Array {
  checkImage(img, 'encodePng');
  return encode({ width: img.width, height: img.height, channels: img.channels, depth: 8, data: img.data });
}

/**
 * Source taps for one axis: output i reads `index[k]` with weight `weight[k]` for k in
 * [offset[i], offset[i+1]). Bilinear uses half-pixel centres (src = (i + ½)·scale − ½, clamped to
 * the edge), the convention of PIL and of torch's align_corners=false. Shrinking by more than 2×,
 * bilinear would skip source pixels and alias, so each output averages the source interval
 * [i·scale, (i+1)·scale) it covers, weighting partly covered pixels by their overlap.
 */
function axisTaps(inN: number, outN: number): { offset: Int32Array; index: Int32Array; weight: Float32Array } {
  const scale = inN / outN;
  const offset = new Int32Array(outN + 1);
  const index: number[] = [];
  const weight: number[] = [];
  for (let i = 0; i < outN; i++) {
    offset[i] = index.length;
    if (scale > 2) {
      const a = i * scale;
      const b = (i + 1) * scale;
      for (let j = Math.floor(a); j < Math.min(inN, Math.ceil(b)); j++) {
        const w = (Math.min(b, j + 1) - Math.max(a, j)) / scale;
        if (w > 0) index.push(j), weight.push(w);
      }
    } else {
      const src = Math.min(inN - 1, Math.max(0, (i + 0.5) * scale - 0.5));
      const j0 = Math.floor(src);
      const f = src - j0;
      index.push(j0), weight.push(1 - f);
      if (f > 0) index.push(j0 + 1), weight.push(f);
    }
  }
  offset[outN] = index.length;
  return { offset, index: Int32Array.from(index), weight: Float32Array.from(weight) };
}

/**
 * Resizes to width×height, separably (rows, then columns), bilinear when growing or shrinking by
 * at most 2×, area-averaging beyond that. Channels are kept; values are rounded to 0..255.
 */
export function resize(img: RgbImage, width: number, height: number): RgbImage {
  checkImage(img, 'resize');
  checkSide('resize', 'width', width);
  checkSide('resize', 'height', height);
  const C = img.channels;
  if (width === img.width && height === img.height) return { width, height, channels: C, data: img.data.slice() };
  const tx = axisTaps(img.width, width);
  const ty = axisTaps(img.height, height);
  // Horizontal pass: (img.height, width, C) in float so the two roundings do not compound.
  const mid = new Float32Array(img.height * width * C);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < width; x++) {
      for (let k = tx.offset[x]!; k < tx.offset[x + 1]!; k++) {
        const src = (y * img.width + tx.index[k]!) * C;
        const dst = (y * width + x) * C;
        const w = tx.weight[k]!;
        for (let c = 0; c < C; c++) mid[dst + c] = mid[dst + c]! + w * img.data[src + c]!;
      }
    }
  }
  const out = new Uint8Array(height * width * C);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < C; c++) {
        let acc = 0;
        for (let k = ty.offset[y]!; k < ty.offset[y + 1]!; k++) acc += ty.weight[k]! * mid[(ty.index[k]! * width + x) * C + c]!;
        out[(y * width + x) * C + c] = Math.min(255, Math.max(0, Math.round(acc)));
      }
    }
  }
  return { width, height, channels: C, data: out };
}

/**
 * Places `img` in the middle of a width×height canvas filled with `fill` (0..255, every channel);
 * an odd margin puts the extra pixel on the right/bottom.
 */
export function padCenter(img: RgbImage, width: number, height: number, fill = 0): RgbImage {
  checkImage(img, 'padCenter');
  checkSide('padCenter', 'width', width);
  checkSide('padCenter', 'height', height);
  if (width < img.width || height < img.height) {
    throw new Error(`padCenter: target ${width}×${height} is smaller than the image ${img.width}×${img.height}`);
  }
  if (!Number.isInteger(fill) || fill < 0 || fill > 255) throw new Error(`padCenter: fill must be an integer in 0..255, got ${fill}`);
  const C = img.channels;
  const data = new Uint8Array(width * height * C).fill(fill);
  const left = Math.floor((width - img.width) / 2);
  const top = Math.floor((height - img.height) / 2);
  for (let y = 0; y < img.height; y++) {
    const row = img.data.subarray(y * img.width * C, (y + 1) * img.width * C);
    data.set(row, ((top + y) * width + left) * C);
  }
  return { width, height, channels: C, data };
}

function channelStat(who: string, name: string, v: ChannelStat | undefined, dflt: number): [number, number, number] {
  if (v === undefined) return [dflt, dflt, dflt];
  const arr = typeof v === 'number' ? [v, v, v] : Array.from(v);
  if (arr.length !== 3 || !arr.every((x) => Number.isFinite(x))) {
    throw new Error(`${who}: ${name} must be a finite number or three finite numbers (R, G, B), got ${JSON.stringify(v)}`);
  }
  if (name === 'std' && !arr.every((x) => x > 0)) throw new Error(`${who}: std must be > 0 in every channel, got ${JSON.stringify(v)}`);
  return arr as [number, number, number];
}

/** RgbImage → normalised CHW Float32Array of length 3·size·size (see the file header). */
export function toModelInput(img: RgbImage, opts: ModelInputOptions): Float32Array {
  checkImage(img, 'toModelInput');
  const S = opts.size;
  checkSide('toModelInput', 'size', S);
  const mean = channelStat('toModelInput', 'mean', opts.mean, 0);
  const std = channelStat('toModelInput', 'std', opts.std, 1);
  const src = img.width === S && img.height === S ? img : resize(img, S, S);
  const C = src.channels;
  const out = new Float32Array(3 * S * S);
  for (let p = 0; p < S * S; p++) {
    // Straight alpha over black: v·a/255.
    const alpha = C === 4 ? src.data[p * 4 + 3]! / 255 : 1;
    for (let c = 0; c < 3; c++) {
      const v = src.data[p * C + (C === 1 ? 0 : c)]! / 255;
      out[c * S * S + p] = (v * alpha - mean[c]!) / std[c]!;
    }
  }
  return out;
}

/** Inverse of `toModelInput` (same mean/std): CHW floats → 8-bit RGB, clamped, for previews. */
export function fromModelInput(chw: Float32Array, opts: ModelInputOptions): RgbImage {
  const S = opts.size;
  checkSide('fromModelInput', 'size', S);
  if (!(chw instanceof Float32Array)) throw new Error(`fromModelInput: input must be a Float32Array, got ${Object.prototype.toString.call(chw)}`);
  if (chw.length !== 3 * S * S) {
    throw new Error(`fromModelInput: input length ${chw.length} does not match 3×${S}×${S} = ${3 * S * S} (CHW)`);
  }
  const mean = channelStat('fromModelInput', 'mean', opts.mean, 0);
  const std = channelStat('fromModelInput', 'std', opts.std, 1);
  const data = new Uint8Array(S * S * 3);
  for (let p = 0; p < S * S; p++) {
    for (let c = 0; c < 3; c++) {
      const v = (chw[c * S * S + p]! * std[c]! + mean[c]!) * 255;
      data[p * 3 + c] = Math.min(255, Math.max(0, Math.round(v)));
    }
  }
  return { width: S, height: S, channels: 3, data };
}
