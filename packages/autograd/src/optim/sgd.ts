/**
 * SGD with momentum (heavy-ball or Nesterov), dampening and L2 weight decay (added to the gradient,
 * PyTorch's `SGD(weight_decay=…)`), on the fused `sgdMomentum` kernel: one dispatch per step.
 * See optimizer.ts for the arena layout, parameter groups, clipping, schedules and state.
 */
import { sgdMomentum, type GpuBuffer, type Runtime } from '@keel/kernels';
import { Optimizer, type OptimizerOptions, type ParamsInput } from './optimizer.js';

export interface SgdOptimizerOptions extends OptimizerOptions {
  /** μ (default 0: plain SGD). */
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer {
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;

  constructor(rt: Runtime, params: ParamsInput, options: SgdOptimizerOptions) {
    const { momentum = 0, dampening = 0, nesterov = false } = options;
    if (!(momentum >= 0 && Number.isFinite(momentum))) throw new Error(`SGD: momentum must be finite and ≥ 0, got ${momentum}`);
    if (nesterov && (momentum === 0 || dampening !== 0)) throw new Error('SGD: Nesterov needs momentum > 0 and zero dampening');
    super(rt, params, options, ['momentum']);
    this.momentum = momentum;
    this.dampening = dampening;
    this.nesterov = nesterov;
  }

  protected update(t: number, clip: GpuBuffer | undefined): void {
    sgdMomentum(
      this.rt,
      { params: this.paramArena, grads: this.gradArena, momentumBuffer: this.slots.get('momentum')! },
      this.table,
      this.hyper,
      { step: t, momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov, ...(clip ? { clip } : {}) },
    );
  }
}
