/**
 * A published file evaluated as the inference service runs it: onnxruntime, with the manifest's own
 * preprocessing, per head.
 */
import { averageHeads } from '@deit-serve/core';
import { evalBatches, type ImageDataset } from '@deit-serve/datasets';
import { AccuracyCounter } from '@deit-serve/finetune';
import { countOnnxParameters } from '@deit-serve/model/onnx-codec';
import { inputSpecFromManifest } from '@deit-serve/preprocess';
import type { ModelRegistry } from '@deit-serve/registry';
import { OnnxModelSession } from '@deit-serve/runtime';

export interface OnnxEvaluation {
  readonly model: string;
  readonly version: number;
  readonly images: number;
  /** Top-1 per head; a single-output model (the teacher) has `cls` only. */
  readonly top1: { readonly cls: number; readonly dist?: number; readonly avg?: number };
  /** Images per second of onnxruntime alone at batch 64 over the test set (preprocessing excluded). */
  readonly imagesPerSecond: number;
  readonly parameters: number;
  readonly onnxBytes: number;
}

/** Top-1 of a registry version's model.onnx on `dataset`, with the manifest's own preprocessing. */
export async function evaluateOnnx(
  registry: ModelRegistry,
  ref: string,
  dataset: ImageDataset,
  options: { batchSize?: number; intraOpThreads?: number } = {},
): Promise<OnnxEvaluation> {
  const version = await registry.loadVersion(ref);
  const m = version.manifest;
  const onnx = version.files.get('model.onnx');
  if (onnx === undefined) throw new Error(`${ref} has no model.onnx`);
  const session = await OnnxModelSession.create(onnx, {
    logger: { warn: () => undefined },
    ...(options.intraOpThreads !== undefined && { intraOpThreads: options.intraOpThreads }),
  });
  const classes = dataset.numClasses;
  const cls = new AccuracyCounter(classes);
  const dist = new AccuracyCounter(classes);
  const avg = new AccuracyCounter(classes);
  const distName = m.outputs.dist;
  let images = 0;
  let runMs = 0;
  try {
    const inputSpec = inputSpecFromManifest(m.input);
    for (const batch of evalBatches(dataset, { batchSize: options.batchSize ?? 64, inputSpec })) {
      const t0 = performance.now();
      const out = await session.run({ [m.input.name]: { data: batch.pixels, dims: batch.dims } });
      runMs += performance.now() - t0;
      const clsLogits = out[m.outputs.cls]?.data;
      if (clsLogits === undefined) throw new Error(`${ref} returned no ${m.outputs.cls}`);
      cls.add(clsLogits, batch.labels);
      if (distName !== null) {
        const distLogits = out[distName]?.data;
        if (distLogits === undefined) throw new Error(`${ref} returned no ${distName}`);
        dist.add(distLogits, batch.labels);
        avg.add(averageHeads(clsLogits, distLogits), batch.labels);
      }
      images += batch.size;
    }
  } finally {
    await session.release();
  }
  return {
    model: version.model,
    version: version.version,
    images,
    top1:
      distName === null
        ? { cls: cls.result().top1 }
        : { cls: cls.result().top1, dist: dist.result().top1, avg: avg.result().top1 },
    imagesPerSecond: images / (runMs / 1000),
    parameters: countOnnxParameters(onnx),
    onnxBytes: onnx.length,
  };
}
