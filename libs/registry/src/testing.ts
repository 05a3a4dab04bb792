/** Test fixtures of the registry library: sample manifests and publish requests, temporary registries. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeTensor, type ManifestFields } from './manifest';
import type { PublishRequest } from './storage';

/** Manifest fields of a tiny two-head model with three classes; enough to exercise every schema part. */
export function sampleFields(): ManifestFields {
  return {
    architecture: 'deit',
    preset: 'deit_tiny_distilled_patch4_32',
    input: {
      name: 'pixel_values',
      image_size: 32,
      channels: 3,
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
      interpolation: 'bicubic',
      crop_pct: 0.875,
    },
    outputs: { cls: 'logits', dist: 'logits_dist' },
    labels: { '0': 'cat', '1': 'dog', '2': 'bird' },
    metrics: { eval_set: 'cifar3-val', top1: { cls: 0.71, dist: 0.73, avg: 0.74 }, teacher_top1: 0.8 },
    lineage: {
      parent: null,
      teacher: 'regnety_160',
      dataset: { name: 'cifar3', sha256: 'a'.repeat(64) },
      hyperparameters: { lr: 0.0005, epochs: 3, augment: { mixup: 0.8 } },
      git_commit: 'abc1234',
      backend: 'tfjs-wasm',
    },
    self_check: {
      input: encodeTensor([1, 3, 2, 2], new Float32Array(12).fill(0.5)),
      expected: {
        logits: encodeTensor([1, 3], new Float32Array([0.1, 0.2, 0.7])),
        logits_dist: encodeTensor([1, 3], new Float32Array([0.2, 0.2, 0.6])),
      },
      tolerance: { atol: 1e-4, rtol: 1e-3 },
    },
  };
}

/** A publish request whose model bytes identify it, so tests can tell versions apart. */
export function sampleRequest(payload: string, extra: Partial<PublishRequest> = {}): PublishRequest {
  const { labels, ...fields } = sampleFields();
  return { ...fields, labels, files: { 'model.onnx': Buffer.from(`onnx:${payload}`) }, ...extra };
}

/** A fresh directory per test; `cleanup` removes it. */
export async function tempDir(
  prefix = 'registry-test-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Polls `predicate` until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
