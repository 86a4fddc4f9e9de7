/**
 * AdamW (decoupled weight decay, bias-corrected) and MaskedAdamW (hard bit mask, or SPIDER's soft
 * allocation W ← W0 + c ⊙ (W_new − W0)) on the fused `maskedAdamW` kernel: one dispatch per step.
 * See optimizer.ts for the arena layout, parameter groups, clipping, schedules and state.
 *
 * Masks are given per parameter and packed into arena order here: a bit mask on the CPU (one small
 * upload per `setBitMask`), SPIDER's c by GPU copies of the given tensors (per `setSpider`), W0 by a
 * GPU snapshot of the current parameters (on the first `setSpider`, or with `resetAnchor`).
 */
import { maskedAdamW, type AdamWMask, type GpuBuffer, type Runtime } from '@keel/kernels';
import type { Tensor } from '../tensor.js';
import { Optimizer, type OptimizerOptions, type OptimizerState, type ParamsInput } from './optimizer.js';

export interface AdamWOptimizerOptions extends OptimizerOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
}

export class AdamW extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;

  constructor(rt: Runtime, params: ParamsInput, options: AdamWOptimizerOptions) {
    const { beta1 = 0.9, beta2 = 0.999, eps = 1e-8 } = options;
    for (const [name, b] of [['beta1', beta1], ['beta2', beta2]] as const) {
      if (!(b >= 0 && b < 1)) throw new Error(`AdamW: ${name} must be in [0, 1), got ${b}`);
    }
    if (!(eps > 0)) throw new Error(`AdamW: eps must be positive, got ${eps}`);
    super(rt, params, { weightDecay: 0.01, ...options }, ['m', 'v']);
    this.beta1 = beta1;
    this.beta2 = beta2;
    this.eps = eps;
  }

  /** The mask of this step (plain AdamW: none). */
  protected mask(): AdamWMask {
    return { mode: 'none' };
  }

  protected update(t: number, clip: GpuBuffer | undefined): void {
    maskedAdamW(
      this.rt,
      { params: this.paramArena, grads: this.gradArena, m: this.slots.get('m')!, v: this.slots.get('v')! },
      this.table,
      this.hyper,
      { step: t, beta1: this.beta1, beta2: this.beta2, eps: this.eps, mask: this.mask(), ...(clip ? { clip } : {}) },
    );
  }
}

export type OptimizerMaskMode = AdamWMask['mode'];

export class MaskedAdamW extends AdamW {
  private mode: OptimizerMaskMode = 'none';
  private bits: GpuBuffer | null = null;
  private w0: GpuBuffer | null = null;
  private c: GpuBuffer | null = null;

  get maskMode(): OptimizerMaskMode {
    return this.mode;
  }

  private indexOf(p: Tensor, what: string): number {
    const i = this.params.indexOf(p);
    if (i < 0) throw new Error(`MaskedAdamW.${what}: ${p} is not one of this optimizer's parameters`);
    return i;
  }

  /**
   * Hard mask: element k of parameter p updates iff masks.get(p)[k] is truthy (row-major, p.size
   * values). Parameters absent from `masks` update fully. Unset elements keep W, m, v bit-identical.
   */
  setBitMask(masks: ReadonlyMap<Tensor, ArrayLike<number | boolean>>): void {
    this.assertLive();
    const n = this.table.arenaLength;
    const words = new Uint32Array(Math.ceil(n / 32));
    const given = new Map<number, ArrayLike<number | boolean>>();
    for (const [p, m] of masks) {
      const i = this.indexOf(p, 'setBitMask');
      if (m.length !== p.size) throw new Error(`MaskedAdamW.setBitMask: mask of ${m.length} values for parameter [${p.shape}] (${p.size} elements)`);
      given.set(i, m);
    }
    this.params.forEach((p, i) => {
      const m = given.get(i);
      const off = this.table.offsets[i]!;
      for (let k = 0; k < p.size; k++) {
        if (m && !m[k]) continue;
        const e = off + k;
        words[e >>> 5]! |= 1 << (e & 31);
      }
    });
    this.releaseMasks();
    this.bits = this.rt.createBuffer(words.byteLength);
    if (words.length) this.rt.write(this.bits, words);
    this.mode = 'bits';
  }

  /**
   * SPIDER soft mode: after each AdamW update W ← W0 + c ⊙ (W_new − W0). `c` gives the allocation of
   * each listed parameter (same shape, values in [0, 1]); unlisted parameters get c = 1. W0 is a
   * snapshot of the current parameters taken on the first call (or when `resetAnchor`).
   */
  setSpider(c: ReadonlyMap<Tensor, Tensor>, options: { resetAnchor?: boolean } = {}): void {
    this.assertLive();
    const bytes = this.table.arenaLength * 4;
    for (const [p, ct] of c) {
      this.indexOf(p, 'setSpider');
      if (ct.shape.join() !== p.shape.join() || ct.dtype !== 'f32') {
        throw new Error(`MaskedAdamW.setSpider: allocation [${ct.shape}] ${ct.dtype} for parameter [${p.shape}]`);
      }
    }
    let w0 = this.mode === 'spider' && !options.resetAnchor ? this.w0 : null;
    if (!w0) {
      w0 = this.rt.createBuffer(bytes);
      this.gather(false);
      this.rt.copy(this.paramArena, w0, bytes);
    }
    const cArena = this.zeroed(bytes, 1);
    for (const [p, ct] of c) this.rt.copy(ct.buffer, cArena, p.size * 4, 0, this.table.offsets[this.params.indexOf(p)]! * 4);
    if (this.w0 !== w0) this.releaseMasks();
    else if (this.c) this.rt.release(this.c);
    this.w0 = w0;
    this.c = cArena;
    this.mode = 'spider';
  }

  /** Back to plain AdamW. */
  clearMask(): void {
    this.releaseMasks();
    this.mode = 'none';
  }

  protected override mask(): AdamWMask {
    if (this.mode === 'bits') return { mode: 'bits', bits: this.bits! };
    if (this.mode === 'spider') return { mode: 'spider', w0: this.w0!, c: this.c! };
    return { mode: 'none' };
  }

  private releaseMasks(): void {
    for (const b of [this.bits, this.w0, this.c]) if (b) this.rt.release(b);
    this.bits = this.w0 = this.c = null;
  }

  protected override async extraState(): Promise<OptimizerState['extra']> {
    if (this.mode === 'bits') return { mode: 'bits', bits: this.bits!.size ? await this.rt.readU32(this.bits!) : new Uint32Array(0) };
    if (this.mode === 'spider') return { mode: 'spider', w0: await this.rt.readF32(this.w0!), c: await this.rt.readF32(this.c!) };
    return { mode: 'none' };
  }

  protected override loadExtraState(extra: OptimizerState['extra']): void {
    const mode = extra?.mode ?? 'none';
    const n = this.table.arenaLength;
    const check = (name: string, a: unknown, len: number, ctor: typeof Float32Array | typeof Uint32Array) => {
      if (!(a instanceof ctor) || a.length !== len) throw new Error(`MaskedAdamW.loadStateDict: mask '${name}' must be a ${ctor.name} of ${len} values`);
      return a;
    };
    if (mode === 'bits') {
      const bits = check('bits', extra!.bits, Math.ceil(n / 32), Uint32Array);
      this.releaseMasks();
      this.bits = this.rt.createBuffer(bits.byteLength);
      if (bits.length) this.rt.write(this.bits, bits);
    } else if (mode === 'spider') {
      const w0 = check('w0', extra!.w0, n, Float32Array);
      const c = check('c', extra!.c, n, Float32Array);
      this.releaseMasks();
      this.w0 = this.rt.upload(w0);
      this.c = this.rt.upload(c);
    } else if (mode === 'none') this.releaseMasks();
    else throw new Error(`MaskedAdamW.loadStateDict: unknown mask mode '${String(mode)}'`);
    this.mode = mode as OptimizerMaskMode;
  }

  override dispose(): void {
    this.releaseMasks();
    super.dispose();
  }
}
