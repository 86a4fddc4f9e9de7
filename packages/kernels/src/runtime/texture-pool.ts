/**
 * Reuse of the operand textures that `Runtime.textureFromBuffer` fills (one per matmul operand,
 * with the same sizes every training step). A texture returns to the free list of its format and
 * size only once the work submitted with it has finished, so a later copy into it can never land
 * before an earlier read. At most `maxPerSize` free textures are kept per format and size (the
 * rest are destroyed); `trim()` destroys every free one.
 */
export interface TexturePoolStats {
  /** Textures handed out whose work has not finished yet. */
  liveTextures: number;
  /** Free textures kept for reuse, and their bytes. */
  pooledTextures: number;
  pooledTextureBytes: number;
  /** Textures ever created (a measure of reuse). */
  texturesCreated: number;
}

export type OperandTextureFormat = 'rgba32float' | 'rgba16float';

export class TexturePool {
  private readonly free = new Map<string, GPUTexture[]>();
  private live = 0;
  private created = 0;

  constructor(
    private readonly device: GPUDevice,
    private readonly usage: number,
    private readonly maxPerSize = 4,
  ) {}

  /** A texture of this format and size (contents undefined if it was reused). */
  acquire(format: OperandTextureFormat, width: number, height: number, layers: number): GPUTexture {
    const list = this.free.get(key(format, width, height, layers));
    let texture = list?.pop();
    if (!texture) {
      texture = this.device.createTexture({ label: 'keel operand texture', size: [width, height, layers], format, usage: this.usage });
      this.created++;
    }
    this.live++;
    return texture;
  }

  /** Takes back a texture whose submitted work has finished. */
  recycle(texture: GPUTexture): void {
    this.live--;
    const k = key(texture.format as OperandTextureFormat, texture.width, texture.height, texture.depthOrArrayLayers);
    const list = this.free.get(k) ?? [];
    if (list.length >= this.maxPerSize) {
      texture.destroy();
      return;
    }
    list.push(texture);
    this.free.set(k, list);
  }

  trim(): void {
    for (const list of this.free.values()) list.forEach((t) => t.destroy());
    this.free.clear();
  }

  stats(): TexturePoolStats {
    let pooledTextures = 0;
    let pooledTextureBytes = 0;
    for (const list of this.free.values()) {
      for (const t of list) {
        pooledTextures++;
        pooledTextureBytes += t.width * t.height * t.depthOrArrayLayers * (t.format === 'rgba16float' ? 8 : 16);
      }
    }
    return { liveTextures: this.live, pooledTextures, pooledTextureBytes, texturesCreated: this.created };
  }
}

function key(format: OperandTextureFormat, width: number, height: number, layers: number): string {
  return `${format}|${width}x${height}x${layers}`;
}
