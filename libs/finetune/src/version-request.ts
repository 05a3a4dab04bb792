/**
 * The version a fine-tune job publishes: ONNX with both heads, checked against the trained tfjs
 * model on evaluation samples, with metrics, lineage (naming the job), curves.png and training.json.
 */
import { evalBatches, type BatchInputSpec } from '@deit-serve/datasets';
import { OnnxIoName } from '@deit-serve/model';
import { FailedPreconditionError } from '@deit-serve/core';
import { packageModel } from '@deit-serve/packaging';
import type { Metrics, PublishRequest } from '@deit-serve/registry';
import { OnnxModelSession } from '@deit-serve/runtime';
import type { EvalResult, FineTuneJobSpec } from '@deit-serve/trainer-engine';
import type { TrainingHistory } from './checkpoint';
import { renderCurvesPng } from './curves';
import { forwardEval } from './evaluate';
import { buildLineage, gitCommit } from './lineage';
import type { FineTuneSources } from './sources';
import type { StudentTrainer } from './student-trainer';

/** Absolute tolerance (plus the same relative share of |logit|) of the ONNX-vs-tfjs check at export. */
export const EXPORT_CHECK_TOLERANCE = 1e-4;

export interface VersionRequestInput {
  readonly jobId: string;
  readonly spec: FineTuneJobSpec;
  readonly sources: FineTuneSources;
  readonly trainer: StudentTrainer;
  readonly finalEval: EvalResult;
  readonly history: TrainingHistory;
  readonly backend: string;
  readonly evalInput: BatchInputSpec;
  /** Samples the exported ONNX must reproduce (tfjs vs onnxruntime). */
  readonly exportCheckSamples: number;
  readonly attempts: number;
  readonly steps: number;
  readonly trainSeconds: number;
}

/** The publish request of the trained student; throws when the export does not reproduce it. */
export async function buildVersionRequest(input: VersionRequestInput): Promise<PublishRequest> {
  const { spec, sources, trainer, finalEval } = input;
  const { student, data } = sources;
  const model = trainer.model;
  const config = model.config;
  const { pixels, dims } = firstEvalSamples(sources, input.evalInput, input.exportCheckSamples);
  const reference = forwardEval(model, pixels, dims);
  const classes = config.numClasses;
  const imageLength = dims[1] * dims[2] * dims[3];
  const metrics: Metrics = {
    eval_set: data.evalSetName,
    top1: {
      cls: finalEval.cls?.top1 ?? 0,
      dist: finalEval.dist?.top1 ?? null,
      avg: finalEval.average?.top1 ?? null,
    },
    teacher_top1: finalEval.teacherTop1 ?? null,
  };
  const lineage = buildLineage(spec, sources, {
    jobId: input.jobId,
    backend: input.backend,
    trainer: { kind: trainer.kind, workers: trainer.workers, microBatchSize: trainer.microBatchSize },
    attempts: input.attempts,
    steps: input.steps,
    trainSeconds: input.trainSeconds,
    imagesPerSecond:
      input.trainSeconds > 0 ? (input.steps * spec.optimization.batchSize) / input.trainSeconds : 0,
    gitCommit: await gitCommit(),
  });
  const curves = await renderCurvesPng(
    input.history,
    `${spec.outputModel} · ${spec.distillation.type} distillation · ${data.name} · ${input.backend}`,
  );
  const request = await packageModel({
    spec: { architecture: 'deit', config },
    preset: student.preset,
    weights: model.getWeights(),
    labels: data.labelNames,
    input: student.input,
    metrics,
    lineage,
    reference: {
      sample: pixels.slice(0, imageLength),
      outputs: {
        [OnnxIoName.clsLogits]: reference.clsLogits.slice(0, classes),
        ...(reference.distLogits !== undefined && {
          [OnnxIoName.distLogits]: reference.distLogits.slice(0, classes),
        }),
      },
      tolerance: EXPORT_CHECK_TOLERANCE,
    },
    extraFiles: {
      'curves.png': curves,
      'training.json': new TextEncoder().encode(
        JSON.stringify(
          { final_eval: finalEval, evals: input.history.evals, losses: input.history.losses },
          null,
          1,
        ),
      ),
    },
  });
  const onnx = request.files['model.onnx'];
  if (!(onnx instanceof Uint8Array)) throw new Error('packaging returned no model.onnx bytes');
  await checkExport(onnx, pixels, dims, reference);
  return request;
}

/** Up to `count` evaluation images (in the model's eval transform) for the export check. */
function firstEvalSamples(
  sources: FineTuneSources,
  inputSpec: BatchInputSpec,
  count: number,
): { pixels: Float32Array; dims: readonly [number, number, number, number] } {
  const first = evalBatches(sources.data.eval, { batchSize: Math.max(1, count), inputSpec }).next();
  if (first.done === true) throw new Error('the evaluation set is empty');
  return { pixels: first.value.pixels, dims: first.value.dims };
}

/**
 * The exported file must reproduce the tfjs model on evaluation samples (both heads), or the job
 * fails: a wrong export never reaches the registry.
 */
async function checkExport(
  onnx: Uint8Array,
  pixels: Float32Array,
  dims: readonly [number, number, number, number],
  reference: { clsLogits: Float32Array; distLogits?: Float32Array },
): Promise<void> {
  const session = await OnnxModelSession.create(onnx, { logger: { warn: () => undefined } });
  try {
    const out = await session.run({ [OnnxIoName.pixelValues]: { data: pixels, dims } });
    const expected: Array<[string, Float32Array]> = [[OnnxIoName.clsLogits, reference.clsLogits]];
    if (reference.distLogits !== undefined) expected.push([OnnxIoName.distLogits, reference.distLogits]);
    for (const [name, want] of expected) {
      const got = out[name]?.data;
      let worst = 0;
      let at = -1;
      for (let i = 0; i < want.length; i++) {
        const excess =
          Math.abs((got?.[i] ?? NaN) - want[i]) - EXPORT_CHECK_TOLERANCE * (1 + Math.abs(want[i]));
        if (!(excess <= worst)) {
          worst = Number.isNaN(excess) ? Infinity : excess;
          at = i;
        }
      }
      if (got === undefined || got.length !== want.length || at >= 0) {
        const detail =
          got === undefined || got.length !== want.length
            ? `missing or wrongly sized (${got?.length ?? 0} values for ${want.length})`
            : `value ${at} is ${got[at]} in ONNX but ${want[at]} in tfjs`;
        throw new FailedPreconditionError(
          `exported ONNX does not reproduce the trained model on evaluation samples: ${name} ${detail}`,
        );
      }
    }
  } finally {
    await session.release();
  }
}
