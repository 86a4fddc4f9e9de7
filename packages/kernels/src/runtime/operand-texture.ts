/**
 * Checks for `Runtime.textureFromBuffer`: the copy of a buffer range into a 2D-array texture that a
 * kernel reads with textureLoad. Kept apart so the runtime holds only the recording.
 */
import type { GpuBuffer } from './buffer-pool.js';
import { LimitError } from './errors.js';

export type OperandTextureFormat = 'rgba32float' | 'rgba16float';

/**
 * Validates a copy of `layers` × `height` rows of `width` texels from `byteOffset` of `buf` and
 * returns the bytes of one texel. Throws naming what is wrong: a non-positive size, a row that is
 * not a multiple of 256 bytes (WebGPU's bytesPerRow alignment), a misaligned offset, an overflow
 * of the buffer, or a device texture limit (LimitError).
 */
export function checkTextureCopy(
  buf: GpuBuffer,
  byteOffset: number,
  size: { width: number; height: number; layers: number },
  format: OperandTextureFormat,
  limits: { maxTextureDimension2D: number; maxTextureArrayLayers: number },
): number {
  const { width, height, layers } = size;
  const what = `textureFromBuffer (${width} × ${height} × ${layers} ${format} texels)`;
  for (const [v, name] of [[width, 'width'], [height, 'height'], [layers, 'layers']] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${what}: ${name} must be a positive integer, got ${v}`);
  }
  const texel = format === 'rgba16float' ? 8 : 16;
  if ((width * texel) % 256 !== 0) throw new Error(`${what}: a row of ${width * texel} bytes is not a multiple of 256 (bytesPerRow alignment)`);
  if (byteOffset % texel !== 0) throw new Error(`${what}: byteOffset ${byteOffset} is not a multiple of ${texel}`);
  const bytes = width * height * layers * texel;
  if (byteOffset + bytes > buf.capacity) throw new RangeError(`${what}: ${bytes} bytes from offset ${byteOffset} overflow the buffer (${buf.capacity} bytes)`);
  const maxDim = limits.maxTextureDimension2D;
  if (width > maxDim || height > maxDim) throw new LimitError('maxTextureDimension2D', Math.max(width, height), maxDim, what);
  if (layers > limits.maxTextureArrayLayers) throw new LimitError('maxTextureArrayLayers', layers, limits.maxTextureArrayLayers, what);
  return texel;
}
