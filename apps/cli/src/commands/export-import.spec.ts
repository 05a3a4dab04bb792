import { initDeitWeights, readOnnxWeights, resolveDeitConfig, writeSafetensors } from '@deit-serve/model';
import { DirectoryRegistry } from '@deit-serve/registry';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runCli } from '../cli';

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = (s: PassThrough) => () => (s.read() as Buffer | null)?.toString() ?? '';
  return { io: { stdout, stderr, env: {} }, out: text(stdout), err: text(stderr) };
}

const dir = mkdtempSync(join(tmpdir(), 'deit-cli-export-'));
const preset = 'deit_pico_distilled_patch4_28';

describe('deit export', () => {
  it('exports a random-initialised preset whose weights are timm-named and seeded', async () => {
    const out = join(dir, 'pico.onnx');
    const t = io();
    expect(await runCli(['export', '--preset', preset, '--seed', '3', '--out', out], t.io)).toBe(0);
    expect(t.out()).toMatch(/random-initialised \(seed 3\)/);
    const read = readOnnxWeights(readFileSync(out));
    expect(read.metadata['preset']).toBe(preset);
    const expected = initDeitWeights(resolveDeitConfig({ preset }), 3).get('blocks.0.attn.qkv.weight')!;
    expect(Array.from(read.weights.get('blocks.0.attn.qkv.weight')!.data)).toEqual(Array.from(expected.data));
  });

  it('adapts a checkpoint to a new class count and image size', async () => {
    const ckpt = join(dir, 'ckpt.safetensors');
    writeFileSync(ckpt, writeSafetensors(initDeitWeights(resolveDeitConfig({ preset }), 1)));
    const out = join(dir, 'adapted.onnx');
    const t = io();
    expect(
      await runCli(
        [
          'export',
          '--preset',
          preset,
          '--weights',
          ckpt,
          '--num-classes',
          '4',
          '--img-size',
          '32',
          '--out',
          out,
        ],
        t.io,
      ),
    ).toBe(0);
    const printed = t.out();
    expect(printed).toMatch(/pos_embed resampled from a 7x7 to a 8x8 grid \(timm bicubic\)/);
    expect(printed).toMatch(/heads re-initialised for 4 classes/);
    expect(readOnnxWeights(readFileSync(out)).weights.get('head.weight')!.shape).toEqual([4, 96]);
  });

  it('resamples pos_embed as the DeiT repository does with --pos-embed deit, and refuses another method', async () => {
    const ckpt = join(dir, 'ckpt-pos.safetensors');
    writeFileSync(ckpt, writeSafetensors(initDeitWeights(resolveDeitConfig({ preset }), 1)));
    const args = (method: string, out: string) => [
      'export',
      '--preset',
      preset,
      '--weights',
      ckpt,
      '--img-size',
      '32',
      '--pos-embed',
      method,
      '--out',
      join(dir, out),
    ];
    const t = io();
    expect(await runCli(args('deit', 'deit.onnx'), t.io)).toBe(0);
    expect(t.out()).toMatch(/pos_embed resampled from a 7x7 to a 8x8 grid \(deit bicubic\)/);
    expect(await runCli(args('timm', 'timm.onnx'), io().io)).toBe(0);
    const pos = (file: string) =>
      readOnnxWeights(readFileSync(join(dir, file))).weights.get('pos_embed')!.data;
    expect(pos('deit.onnx')).not.toEqual(pos('timm.onnx'));
    await expect(runCli(args('bilinear', 'x.onnx'), io().io)).rejects.toThrow(
      /--pos-embed must be one of timm, deit, not "bilinear"/,
    );
  });

  it('names the bad key of a checkpoint that does not fit the preset', async () => {
    const weights = initDeitWeights(resolveDeitConfig({ preset }), 1);
    weights.delete('blocks.2.norm1.weight');
    const ckpt = join(dir, 'bad.safetensors');
    writeFileSync(ckpt, writeSafetensors(weights));
    await expect(
      runCli(['export', '--preset', preset, '--weights', ckpt, '--out', join(dir, 'x.onnx')], io().io),
    ).rejects.toThrow(/blocks\.2\.norm1\.weight/);
  });

  it('refuses an unknown preset and a bad number', async () => {
    await expect(
      runCli(['export', '--preset', 'resnet50', '--out', join(dir, 'y.onnx')], io().io),
    ).rejects.toThrow(/unknown preset "resnet50"/);
    await expect(
      runCli(['export', '--preset', preset, '--seed', 'x', '--out', join(dir, 'y.onnx')], io().io),
    ).rejects.toThrow(/--seed must be an integer/);
  });
});

describe('deit models import', () => {
  it('publishes a timm checkpoint (nested under model.) as a self-checked version and moves the alias', async () => {
    const registryDir = join(dir, 'registry');
    const labels = join(dir, 'labels.txt');
    writeFileSync(labels, 'a\nb\nc\n');
    const ckpt = join(dir, 'nested.safetensors');
    const weights = initDeitWeights(resolveDeitConfig({ preset }), 2);
    writeFileSync(ckpt, writeSafetensors(new Map([...weights].map(([k, v]) => [`model.${k}`, v]))));
    const t = io();
    const code = await runCli(
      [
        'models',
        'import',
        '--safetensors',
        ckpt,
        '--preset',
        preset,
        '--labels',
        labels,
        '--name',
        'imp',
        '--alias',
        'staging',
        '--registry',
        registryDir,
      ],
      t.io,
    );
    expect(code).toBe(0);
    expect(t.out()).toMatch(/published imp:1/);
    const registry = await DirectoryRegistry.open(registryDir);
    const info = await registry.getManifest('imp@staging');
    expect(info.version).toBe(1);
    expect(info.manifest.outputs).toEqual({ cls: 'cls_logits', dist: 'dist_logits' });
    expect(info.manifest.self_check).not.toBeNull();
    expect(Object.values(info.manifest.labels)).toEqual(['a', 'b', 'c']);
  });

  it('requires a source', async () => {
    const t = io();
    expect(await runCli(['models', 'import', '--preset', preset, '--labels', 'x', '--name', 'n'], t.io)).toBe(
      2,
    );
    expect(t.err()).toMatch(/--safetensors \(or --random-init\)/);
  });
});
