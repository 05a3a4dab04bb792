import { describe, expect, it } from 'vitest';
import { hostTensor } from '../weights/named-weights';
import { initDeitWeights } from './deit';
import { antialiasedBicubicMatrix, reinitHeads, resamplePosEmbed } from './pos-embed';
import { DEIT_PRESETS } from './presets';

describe("resamplePosEmbed 'deit' (bicubic, align_corners=False, A = -0.75, no antialias)", () => {
  it('matches a hand-computed 2x2 -> 4x4 case', () => {
    // One axis, 2 -> 4, scale 0.5: sources -0.25, 0.25, 0.75, 1.25 (t = 0.75, 0.25, 0.75, 0.25).
    // Keys weights for t = 0.75: [-0.03515625, 0.26171875, 0.87890625, -0.10546875] on taps
    // floor-1 .. floor+2 = -2..1, clamped to 0,0,0,1 -> (1.10546875, -0.10546875); for t = 0.25 on
    // taps -1..2 -> 0,0,1,1: [-0.10546875, 0.87890625, 0.26171875, -0.03515625] -> (0.7734375, 0.2265625).
    const M = [
      [1.10546875, -0.10546875],
      [0.7734375, 0.2265625],
      [0.2265625, 0.7734375],
      [-0.10546875, 1.10546875],
    ];
    const grid = [
      [1, 2],
      [3, 4],
    ];
    const dim = 2; // channel 1 holds 10 × channel 0, to check channels stay apart
    const prefix = [0.123, -4.5, 7.25, 1e-7];
    const data = new Float32Array([...prefix, ...grid.flat().flatMap((v) => [v, 10 * v])]);
    const out = resamplePosEmbed(hostTensor([1, 2 + 4, dim], data), 4, 4, 2, 'deit');
    expect(out.shape).toEqual([1, 2 + 16, dim]);
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        let expected = 0;
        for (let p = 0; p < 2; p++) for (let q = 0; q < 2; q++) expected += M[i][p] * M[j][q] * grid[p][q];
        const offset = (2 + i * 4 + j) * dim;
        expect(out.data[offset]).toBeCloseTo(expected, 6);
        expect(out.data[offset + 1]).toBeCloseTo(10 * expected, 5);
      }
    }
    // PyTorch prints 0.6836 for the corner of F.interpolate([[1, 2], [3, 4]], size=4, mode='bicubic').
    expect(out.data[2 * dim]).toBeCloseTo(0.68359375, 7);
    expect(Array.from(out.data.subarray(0, 2 * dim))).toEqual(Array.from(data.subarray(0, 2 * dim)));
  });

  it('resamples 224 -> 384 (14x14 -> 24x24) and keeps the prefix tokens bit-identical', () => {
    const pos = initDeitWeights(DEIT_PRESETS.deit_tiny_distilled_patch16_224, 1).get('pos_embed');
    if (pos === undefined) throw new Error('no pos_embed');
    expect(pos.shape).toEqual([1, 2 + 14 * 14, 192]);
    const out = resamplePosEmbed(pos, 24, 24);
    expect(out.shape).toEqual([1, 2 + 24 * 24, 192]);
    expect(out.data.subarray(0, 2 * 192)).toEqual(pos.data.subarray(0, 2 * 192));
    expect(out.data.every(Number.isFinite)).toBe(true);
  });

  it('is the identity for the same grid and supports non-square targets', () => {
    const data = Float32Array.from({ length: (1 + 9) * 3 }, (_, i) => Math.sin(i));
    const pos = hostTensor([1, 10, 3], data);
    expect(resamplePosEmbed(pos, 3, 3, 1).data).toEqual(data);
    expect(resamplePosEmbed(pos, 2, 5, 1).shape).toEqual([1, 1 + 10, 3]);
  });

  it('rejects a grid that is not square', () => {
    expect(() => resamplePosEmbed(hostTensor([1, 2 + 6, 1], new Float32Array(8)), 4, 4)).toThrow(
      /not a square grid/,
    );
  });
});

describe("resamplePosEmbed 'timm' (bicubic with antialias, as timm's resample_abs_pos_embed)", () => {
  it('matches a hand-computed 2 -> 4 row: Pillow-style taps inside the input, A = -0.5, renormalised', () => {
    // dst 0: centre 0.25, taps 0 and 1 at distances 0.25 and 1.25: Keys(A=-0.5) gives 0.8671875 and
    // -0.0703125, which sum to 0.796875 and are divided by it.
    const rows = antialiasedBicubicMatrix(2, 4);
    expect(rows[0][0]).toBeCloseTo(0.8671875 / 0.796875, 12);
    expect(rows[0][1]).toBeCloseTo(-0.0703125 / 0.796875, 12);
    for (const row of [...rows, ...antialiasedBicubicMatrix(14, 24), ...antialiasedBicubicMatrix(24, 14)]) {
      expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
  });

  it("differs from the DeiT repository's plain bicubic when enlarging 14x14 -> 24x24, and is the default", () => {
    const pos = initDeitWeights(DEIT_PRESETS.deit_tiny_distilled_patch16_224, 1).get('pos_embed');
    if (pos === undefined) throw new Error('no pos_embed');
    const timm = resamplePosEmbed(pos, 24, 24, 2, 'timm');
    const deit = resamplePosEmbed(pos, 24, 24, 2, 'deit');
    expect(resamplePosEmbed(pos, 24, 24).data).toEqual(timm.data);
    let worst = 0;
    for (let i = 0; i < timm.data.length; i++) worst = Math.max(worst, Math.abs(timm.data[i] - deit.data[i]));
    expect(worst).toBeGreaterThan(1e-4);
  });
});

describe('reinitHeads', () => {
  it('replaces both heads with trunc-normal(0.02) weights and zero biases, leaving the backbone untouched', () => {
    const weights = initDeitWeights({ ...DEIT_PRESETS.deit_pico_distilled_patch4_28, numClasses: 1000 }, 2);
    const out = reinitHeads(weights, 10, 3);
    expect(out.get('head.weight')?.shape).toEqual([10, 96]);
    expect(out.get('head.bias')?.data).toEqual(new Float32Array(10));
    expect(out.get('head_dist.weight')?.shape).toEqual([10, 96]);
    expect(out.get('head_dist.bias')?.shape).toEqual([10]);
    const w = out.get('head.weight')?.data ?? new Float32Array();
    const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
    expect(std).toBeGreaterThan(0.012);
    expect(std).toBeLessThan(0.028);
    expect(out.get('head.weight')?.data).not.toEqual(out.get('head_dist.weight')?.data);
    for (const [name, tensor] of weights) {
      if (name.startsWith('head')) continue;
      expect(out.get(name), name).toBe(tensor);
    }
    expect(weights.get('head.weight')?.shape).toEqual([1000, 96]);
    expect(reinitHeads(weights, 10, 3).get('head.weight')?.data).toEqual(w);
  });
});
