import { describe, expect, it } from 'vitest';
import { isTrainable } from './train-task';

describe('isTrainable', () => {
  it('trains everything with scope all', () => {
    expect(isTrainable('patch_embed.proj.weight', { kind: 'all' }, 6)).toBe(true);
  });

  it('trains the last N blocks, the final norm and both heads with last-blocks', () => {
    const scope = { kind: 'last-blocks', blocks: 2 } as const;
    const trained = [
      'blocks.4.attn.qkv.weight',
      'blocks.5.mlp.fc2.bias',
      'norm.weight',
      'head.weight',
      'head_dist.bias',
    ];
    const frozen = [
      'blocks.3.norm1.weight',
      'patch_embed.proj.weight',
      'pos_embed',
      'cls_token',
      'dist_token',
    ];
    for (const name of trained) expect([name, isTrainable(name, scope, 6)]).toEqual([name, true]);
    for (const name of frozen) expect([name, isTrainable(name, scope, 6)]).toEqual([name, false]);
  });
});
