/**
 * AdamW (decoupled weight decay, bias-corrected) and MaskedAdamW (hard bit mask, or SPIDER's soft
 * allocation W ← W0 + c ⊙ (W_new − W0)) on the fused `maskedAdamW` kernel: one dispatch per step.
 * See optimizer.ts for the arena layout, parameter groups, clipping, schedules and state.
 *
 * Masks are given per parameter and packed into arena order here: a bit mask on the CPU (one small
 * upload per `setBitMask`), SPIDER's c by GPU copies of the given tensors (per `setSpider`), W0 by a
 * GPU snapshot of the current parameters (on the first `setSpider`, or with `resetAnchor`).
 * Methods that build their masks on the GPU hand them over already in arena order instead
 * (`setBitMaskBuffer`, `setSpiderArenas`, checked against the optimizer's layout), usually from an
 * `onGradients` hook, which runs inside `step()` between the gather (and clip record) and the fused
 * update: a mask derived from this step's gradients then applies to this very step, with no readback.
 */
import { maskedAdamW, type AdamWMask, type GpuBuffer, type Runtime, type SegmentLayout } from '@keel/kernels';
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

/** What an `onGradients` hook sees: the optimizer's arenas of this step, gathered, not yet updated. */
export interface GradientArenas {
  /** (N,) the parameters before this step's update, in arena order. */
  readonly params: GpuBuffer;
  /** (N,) this step's raw gradients (zeros for a parameter without one); not yet clipped. */
  readonly grads: GpuBuffer;
  /** This step's clip record (grad-norm.ts; scale at word 2) when maxNorm or trackGradNorm is set. */
  readonly clip: GpuBuffer | undefined;
  /** The step being taken, 1-based. */
  readonly step: number;
}

/**
 * Runs inside `step()` before the fused update; may set this step's mask. A returned function runs
 * once the update is recorded (to release buffers the mask used).
 */
export type GradientHook = (arenas: GradientArenas) => (() => void) | void;

export class MaskedAdamW extends AdamW {
  private mode: OptimizerMaskMode = 'none';
  private bits: GpuBuffer | null = null;
  private w0: GpuBuffer | null = null;
  private c: GpuBuffer | null = null;
  /** w0 and c belong to the caller (setSpiderArenas): never released here. */
  private borrowed = false;
  private gradientHook: GradientHook | null = null;

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
    let w0 = this.mode === 'spider' && !this.borrowed && !options.resetAnchor ? this.w0 : null;
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

  /** Throws unless `layout` is this optimizer's arena layout (same tensors, lengths and offsets). */
  private checkLayout(what: string, layout: SegmentLayout): void {
    const { table } = this;
    const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    if (!same(layout.lengths, table.lengths) || !same(layout.offsets, table.offsets) || layout.arenaLength !== table.arenaLength) {
      throw new Error(
        `MaskedAdamW.${what}: the mask was laid out for tensors [${layout.lengths}] at offsets [${layout.offsets}] (${layout.arenaLength} elements); ` +
          `this optimizer holds [${table.lengths}] at [${table.offsets}] (${table.arenaLength} elements)`,
      );
    }
  }

  /**
   * Hard mask already packed on the GPU: bit e (word e >> 5, bit e & 31) set = arena element e
   * updates, `layout` being the layout it was built for (asserted equal to this optimizer's, e.g.
   * topkThreshold's mask over a segment table of the same lengths). The optimizer takes ownership:
   * `bits` is released with the next mask, clearMask() or dispose().
   */
  setBitMaskBuffer(bits: GpuBuffer, layout: SegmentLayout): void {
    this.assertLive();
    this.checkLayout('setBitMaskBuffer', layout);
    const words = Math.ceil(this.table.arenaLength / 32);
    if (bits.isReleased) throw new Error('MaskedAdamW.setBitMaskBuffer: the mask buffer was released');
    if (bits.size < words * 4) throw new Error(`MaskedAdamW.setBitMaskBuffer: mask of ${bits.size / 4} words, need ${words} for ${this.table.arenaLength} arena elements`);
    if (bits === this.bits) return;
    this.releaseMasks();
    this.bits = bits;
    this.mode = 'bits';
  }

  /**
   * SPIDER soft mode over arenas the caller owns: W ← W0 + c ⊙ (W_new − W0) with `w0` and `c` laid
   * out by `layout` (asserted equal to this optimizer's). Both are borrowed, never released here, and
   * must stay alive while this mode is set (call clearMask() before releasing them).
   */
  setSpiderArenas(w0: GpuBuffer, c: GpuBuffer, layout: SegmentLayout): void {
    this.assertLive();
    this.checkLayout('setSpiderArenas', layout);
    const bytes = this.table.arenaLength * 4;
    for (const [name, b] of [['w0', w0], ['c', c]] as const) {
      if (b.isReleased) throw new Error(`MaskedAdamW.setSpiderArenas: arena '${name}' was released`);
      if (b.size !== bytes) throw new Error(`MaskedAdamW.setSpiderArenas: arena '${name}' has ${b.size / 4} elements, the optimizer's arena ${bytes / 4}`);
    }
    if (w0 === c) throw new Error("MaskedAdamW.setSpiderArenas: arenas 'w0' and 'c' must be different buffers");
    this.releaseMasks();
    this.w0 = w0;
    this.c = c;
    this.borrowed = true;
    this.mode = 'spider';
  }

  /** Installs (or with null removes) the hook run inside every step() before the fused update. */
  onGradients(hook: GradientHook | null): void {
    this.gradientHook = hook;
  }

  protected override update(t: number, clip: GpuBuffer | undefined): void {
    const after = this.gradientHook?.({ params: this.paramArena, grads: this.gradArena, clip, step: t });
    super.update(t, clip);
    after?.();
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
    for (const b of this.borrowed ? [this.bits] : [this.bits, this.w0, this.c]) if (b) this.rt.release(b);
    this.bits = this.w0 = this.c = null;
    this.borrowed = false;
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
    this.gradientHook = null;
    this.releaseMasks();
    super.dispose();
  }
}
