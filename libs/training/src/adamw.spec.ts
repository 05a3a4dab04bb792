import { describe, expect, it } from 'vitest';
import { ADAMW_DEFAULTS, AdamW, timmNoWeightDecay } from './adamw';

describe('AdamW', () => {
  it('defaults to PyTorch betas/eps and the DeiT weight decay', () => {
    expect(ADAMW_DEFAULTS).toEqual({ betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05 });
    const opt = new AdamW([], { lr: 1e-3 });
    expect([opt.beta1, opt.beta2, opt.eps, opt.weightDecay]).toEqual([0.9, 0.999, 1e-8, 0.05]);
  });

  it('matches a hand-computed two-step update (decayed weight, undecayed bias)', () => {
    const opt = new AdamW(
      [
        { name: 'head.weight', shape: [1, 1] },
        { name: 'head.bias', shape: [1] },
      ],
      { lr: 0.1, weightDecay: 0.05 },
    );
    const weight = new Float32Array([1.0]);
    const bias = new Float32Array([-2.0]);
    const params = new Map([
      ['head.weight', weight],
      ['head.bias', bias],
    ]);

    // Step 1, weight, g = 0.5: p = 1·(1 − 0.1·0.05) = 0.995; m = 0.05; v = 0.001·0.25 = 2.5e-4;
    // bias corrections 0.1 and 0.001 → step size 0.1/0.1 = 1, denom = √2.5e-4/√0.001 + 1e-8 = 0.5;
    // p = 0.995 − 0.05/0.5 = 0.895.  Bias, g = −0.1, no decay: p = −2 + 0.1 = −1.9.
    opt.step(
      params,
      new Map([
        ['head.weight', new Float32Array([0.5])],
        ['head.bias', new Float32Array([-0.1])],
      ]),
    );
    expect(weight[0]).toBeCloseTo(0.895, 6);
    expect(bias[0]).toBeCloseTo(-1.9, 6);

    // Step 2, weight, g = 0.2: p = 0.895·0.995 = 0.890525; m = 0.9·0.05 + 0.1·0.2 = 0.065;
    // v = 0.999·2.5e-4 + 0.001·0.04 = 2.8975e-4; step size 0.1/(1 − 0.81) = 0.526316;
    // denom = √2.8975e-4/√(1 − 0.999²) = 0.380720; p = 0.890525 − 0.526316·0.065/0.380720 = 0.800667.
    // Bias, g = 0.3: m = −0.009 + 0.03 = 0.021; v = 0.999e-5 + 9e-5 = 9.999e-5;
    // denom = √9.999e-5/√0.001999 = 0.223649; p = −1.9 − 0.526316·0.021/0.223649 = −1.949419.
    opt.step(
      params,
      new Map([
        ['head.weight', new Float32Array([0.2])],
        ['head.bias', new Float32Array([0.3])],
      ]),
    );
    expect(weight[0]).toBeCloseTo(0.8006675, 6);
    expect(bias[0]).toBeCloseTo(-1.949419, 6);
    expect(opt.stepCount('head.weight')).toBe(2);
  });

  it('takes the learning rate per step', () => {
    const opt = new AdamW([{ name: 'w', shape: [2, 1] }], { lr: 0.1, weightDecay: 0 });
    const w = new Float32Array([0, 0]);
    // The first Adam step moves each element by lr·sign(g) (up to ε).
    opt.step(new Map([['w', w]]), new Map([['w', new Float32Array([3, -0.01])]]), 0.25);
    expect(Array.from(w).map((x) => Number(x.toFixed(6)))).toEqual([-0.25, 0.25]);
    opt.lr = 0.5;
    opt.step(new Map([['w', w]]), new Map([['w', new Float32Array([3, -0.01])]]));
    expect(w[0]).toBeCloseTo(-0.75, 5);
  });

  it('skips parameters without a gradient entirely (PyTorch grad is None)', () => {
    const opt = new AdamW(
      [
        { name: 'head.weight', shape: [2, 2] },
        { name: 'head_dist.weight', shape: [2, 2] },
      ],
      { lr: 0.1, weightDecay: 0.5 },
    );
    const head = new Float32Array([1, 2, 3, 4]);
    const headDist = new Float32Array([1, 2, 3, 4]);
    opt.step(
      new Map([
        ['head.weight', head],
        ['head_dist.weight', headDist],
      ]),
      new Map([['head.weight', new Float32Array(4)]]),
    );
    expect(Array.from(headDist)).toEqual([1, 2, 3, 4]); // not even decayed
    expect(head[0]).toBeCloseTo(0.95, 6); // decayed: 1·(1 − 0.1·0.5), zero gradient moves nothing
    expect(opt.stepCount('head_dist.weight')).toBe(0);
    expect(() => opt.step(new Map(), new Map([['nope', new Float32Array(1)]]))).toThrow(
      /unknown parameter nope/,
    );
  });
});

describe('timmNoWeightDecay', () => {
  it('exempts the tokens, pos_embed, biases and 1-D norm weights; decays matrices', () => {
    const cases: Array<[string, number[], boolean]> = [
      ['pos_embed', [1, 66, 192], true],
      ['cls_token', [1, 1, 192], true],
      ['dist_token', [1, 1, 192], true],
      ['patch_embed.proj.bias', [192], true],
      ['blocks.0.norm1.weight', [192], true],
      ['norm.weight', [192], true],
      ['blocks.3.attn.qkv.bias', [576], true],
      ['patch_embed.proj.weight', [192, 3, 4, 4], false],
      ['blocks.0.attn.qkv.weight', [576, 192], false],
      ['blocks.0.mlp.fc1.weight', [768, 192], false],
      ['head.weight', [10, 192], false],
      ['head_dist.weight', [10, 192], false],
    ];
    for (const [name, shape, exempt] of cases)
      expect([name, timmNoWeightDecay(name, shape)]).toEqual([name, exempt]);
    const opt = new AdamW(
      cases.map(([name, shape]) => ({ name, shape })),
      { lr: 1 },
    );
    expect(opt.decays('pos_embed')).toBe(false);
    expect(opt.decays('head.weight')).toBe(true);
  });
});
