import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  createDeit,
  hostTensor,
  initBackend,
  type PosEmbedResampling,
  resamplePosEmbed,
} from '@deit-serve/model';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { presetWeights } from '../src';
import { maxAbsDiff } from '@deit-serve/core';

/**
 * A timm checkpoint loaded at another image size must compute what timm computes when it loads that
 * checkpoint at that size (its checkpoint filter resamples `pos_embed` with antialiased bicubic). timm
 * from PyPI on PyTorch is the independent reference (`timm_reference.py`); TIMM_PYTHON names an
 * interpreter with torch and timm (default reports/.venv-timm, made by tools/scripts/test-setup.sh).
 * Skipped, with the reason in the test name, when it is missing.
 */
const root = join(__dirname, '..', '..', '..');
const python = process.env['TIMM_PYTHON'] ?? join(root, 'reports', '.venv-timm', 'bin', 'python');
const probe = existsSync(python)
  ? spawnSync(python, ['-c', 'import torch, timm; print(timm.__version__)'], { encoding: 'utf8' })
  : undefined;
const missing =
  probe === undefined || probe.error !== undefined || probe.status !== 0
    ? `skipped: ${python} with torch and timm not found (tools/scripts/test-setup.sh makes it)`
    : undefined;
const NEW_SIZE = 40;

function f32(dir: string, name: string): Float32Array {
  const bytes = readFileSync(join(dir, name));
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

describe.skipIf(missing !== undefined)(
  missing ?? 'timm at a new resolution (timm from PyPI as the reference)',
  () => {
    let dir = '';
    beforeAll(async () => {
      await initBackend();
      dir = mkdtempSync(join(tmpdir(), 'timm-ref-'));
      const run = spawnSync(python, [join(__dirname, 'timm_reference.py'), dir, String(NEW_SIZE)], {
        encoding: 'utf8',
      });
      if (run.status !== 0) throw new Error(`timm_reference.py failed: ${run.stderr}`);
    }, 120_000);
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    async function logits(
      resampling: PosEmbedResampling,
    ): Promise<{ cls: Float32Array; dist: Float32Array }> {
      const adapted = presetWeights({
        preset: 'deit_pico_distilled_patch4_28',
        safetensors: readFileSync(join(dir, 'checkpoint.safetensors')),
        numClasses: 10,
        imgSize: NEW_SIZE,
        posEmbedResampling: resampling,
      });
      expect(adapted.changes.join('\n')).toMatch(/pos_embed resampled from a 7x7 to a 10x10 grid/);
      // The weights are adapted already: createDeit finds nothing more to change.
      const model = createDeit({
        preset: 'deit_pico_distilled_patch4_28',
        numClasses: 10,
        imgSize: NEW_SIZE,
        weights: adapted.weights,
      });
      const x = tf.tensor4d(f32(dir, 'input.f32'), [2, 3, NEW_SIZE, NEW_SIZE]);
      const out = model.forward(x, { training: false });
      if (!out.dist) throw new Error('expected a distillation head');
      const result = {
        cls: (await out.cls.data()) as Float32Array,
        dist: (await out.dist.data()) as Float32Array,
      };
      tf.dispose([x, out.cls, out.dist]);
      model.dispose();
      return result;
    }

    it("resamples pos_embed as timm's resample_abs_pos_embed does, enlarging and shrinking (<= 2e-5, float32 rounding on values of about 4)", () => {
      const src = hostTensor([1, 2 + 14 * 14, 8], f32(dir, 'pos_src.f32'));
      expect(
        maxAbsDiff(resamplePosEmbed(src, 24, 24, 2, 'timm').data, f32(dir, 'pos_up.f32')),
      ).toBeLessThanOrEqual(2e-5);
      expect(
        maxAbsDiff(resamplePosEmbed(src, 9, 9, 2, 'timm').data, f32(dir, 'pos_down.f32')),
      ).toBeLessThanOrEqual(2e-5);
    });

    it("gives timm's logits for both heads at the new size (<= 1e-4), where the DeiT repository's plain bicubic does not", async () => {
      const expected = { cls: f32(dir, 'cls.f32'), dist: f32(dir, 'dist.f32') };
      const timm = await logits('timm');
      expect(maxAbsDiff(timm.cls, expected.cls)).toBeLessThanOrEqual(1e-4);
      expect(maxAbsDiff(timm.dist, expected.dist)).toBeLessThanOrEqual(1e-4);
      const deit = await logits('deit');
      expect(
        Math.max(maxAbsDiff(deit.cls, expected.cls), maxAbsDiff(deit.dist, expected.dist)),
      ).toBeGreaterThan(1e-3);
    }, 120_000);
  },
);
