/**
 * Decoupled AdamW with PyTorch's `torch.optim.AdamW` semantics, on host Float32Arrays.
 *
 * Per parameter, for step t (counted per parameter, like PyTorch's `state['step']`):
 *   p ← p·(1 − lr·wd)                              (only where the parameter decays)
 *   m ← β1·m + (1 − β1)·g ;  v ← β2·v + (1 − β2)·g²
 *   p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + ε)
 * A parameter whose gradient is absent is skipped entirely (no decay, no moment update), as PyTorch
 * skips `grad is None`; that is how the distillation head stays untouched when the loss is `none`.
 *
 * It runs on the host rather than as tfjs ops because the data-parallel leader owns the weights as
 * (shared) Float32Arrays; one fused loop over ~5.5 M DeiT-Ti values costs tens of milliseconds, small
 * next to a training step, and needs no tensor round trips.
 */

export interface ParamSpec {
  /** timm state-dict name, e.g. `blocks.0.attn.qkv.weight`. */
  readonly name: string;
  /** Shape in timm (PyTorch) layout; the update is element-wise, so only the size and rank matter. */
  readonly shape: readonly number[];
}

export type NoDecayPredicate = (name: string, shape: readonly number[]) => boolean;

/** DeiT's `no_weight_decay()` set: the tokens and position embedding. */
export const DEIT_NO_WEIGHT_DECAY_NAMES: ReadonlySet<string> = new Set([
  'pos_embed',
  'cls_token',
  'dist_token',
]);

/**
 * timm `param_groups_weight_decay`: no decay for 1-D parameters (biases, LayerNorm weights and biases),
 * names ending in `.bias`, and the model's `no_weight_decay()` names (DeiT: pos_embed, cls_token,
 * dist_token, which are 3-D and would otherwise decay).
 */
export const timmNoWeightDecay: NoDecayPredicate = (name, shape) =>
  shape.length <= 1 || name.endsWith('.bias') || DEIT_NO_WEIGHT_DECAY_NAMES.has(name);

export interface AdamWOptions {
  readonly lr: number;
  /** Default [0.9, 0.999] (PyTorch). */
  readonly betas?: readonly [number, number];
  /** Default 1e-8 (PyTorch, DeiT). */
  readonly eps?: number;
  /** Default 0.05: the DeiT recipe (PyTorch's own default is 0.01). */
  readonly weightDecay?: number;
  /** Default `timmNoWeightDecay`. */
  readonly noDecay?: NoDecayPredicate;
}

export const ADAMW_DEFAULTS = {
  betas: [0.9, 0.999] as const,
  eps: 1e-8,
  weightDecay: 0.05,
} as const;

interface ParamState {
  readonly size: number;
  readonly decays: boolean;
  readonly expAvg: Float32Array;
  readonly expAvgSq: Float32Array;
  step: number;
}

export class AdamW {
  /** Learning rate of the next `step()` unless that call passes its own; schedulers set it per step. */
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly state = new Map<string, ParamState>();

  constructor(params: readonly ParamSpec[], options: AdamWOptions) {
    this.lr = options.lr;
    [this.beta1, this.beta2] = options.betas ?? ADAMW_DEFAULTS.betas;
    this.eps = options.eps ?? ADAMW_DEFAULTS.eps;
    this.weightDecay = options.weightDecay ?? ADAMW_DEFAULTS.weightDecay;
    const noDecay = options.noDecay ?? timmNoWeightDecay;
    const problems: string[] = [];
    if (!(this.lr >= 0)) problems.push(`lr must be >= 0, got ${this.lr}`);
    if (!(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1))
      problems.push(`betas must be in [0, 1), got [${this.beta1}, ${this.beta2}]`);
    if (!(this.eps >= 0)) problems.push(`eps must be >= 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) problems.push(`weightDecay must be >= 0, got ${this.weightDecay}`);
    for (const { name, shape } of params) {
      if (this.state.has(name)) problems.push(`parameter ${name} listed twice`);
      const size = shape.reduce((a, b) => a * b, 1);
      this.state.set(name, {
        size,
        decays: !noDecay(name, shape),
        expAvg: new Float32Array(size),
        expAvgSq: new Float32Array(size),
        step: 0,
      });
    }
    if (problems.length > 0) throw new Error(`AdamW: ${problems.join('; ')}`);
  }

  /** Whether weight decay applies to `name` (false for unknown names). */
  decays(name: string): boolean {
    return this.state.get(name)?.decays ?? false;
  }

  /** Steps taken by `name` (those with a gradient). */
  stepCount(name: string): number {
    return this.state.get(name)?.step ?? 0;
  }

  /**
   * Updates `params` in place. Every parameter needs an entry in `params`; a missing or undefined
   * gradient skips that parameter.
   */
  step(
    params: ReadonlyMap<string, Float32Array>,
    grads: ReadonlyMap<string, Float32Array | undefined>,
    lr: number = this.lr,
  ): void {
    for (const name of grads.keys()) {
      if (!this.state.has(name)) throw new Error(`AdamW: gradient for unknown parameter ${name}`);
    }
    for (const [name, state] of this.state) {
      const grad = grads.get(name);
      if (grad === undefined) continue;
      const param = params.get(name);
      if (param === undefined) throw new Error(`AdamW: no values for parameter ${name}`);
      if (param.length !== state.size || grad.length !== state.size) {
        throw new Error(
          `AdamW: ${name} has ${state.size} values, got param ${param.length} / grad ${grad.length}`,
        );
      }
      state.step += 1;
      adamwKernel(param, grad, state.expAvg, state.expAvgSq, {
        lr,
        weightDecay: state.decays ? this.weightDecay : 0,
        beta1: this.beta1,
        beta2: this.beta2,
        eps: this.eps,
        step: state.step,
      });
    }
  }
}

interface KernelArgs {
  readonly lr: number;
  readonly weightDecay: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly step: number;
}

/** The fused per-element update; exported so a sharded optimizer can run it on a slice. */
export function adamwKernel(
  param: Float32Array,
  grad: Float32Array,
  expAvg: Float32Array,
  expAvgSq: Float32Array,
  a: KernelArgs,
): void {
  const decay = 1 - a.lr * a.weightDecay;
  const stepSize = a.lr / (1 - a.beta1 ** a.step);
  const invBc2Sqrt = 1 / Math.sqrt(1 - a.beta2 ** a.step);
  const b1 = a.beta1;
  const b2 = a.beta2;
  const c1 = 1 - b1;
  const c2 = 1 - b2;
  const eps = a.eps;
  const n = param.length;
  for (let i = 0; i < n; i++) {
    const g = grad[i];
    const m = b1 * expAvg[i] + c1 * g;
    const v = b2 * expAvgSq[i] + c2 * g * g;
    expAvg[i] = m;
    expAvgSq[i] = v;
    param[i] = param[i] * decay - (stepSize * m) / (Math.sqrt(v) * invBc2Sqrt + eps);
  }
}
