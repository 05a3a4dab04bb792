/**
 * The last phases of a fine-tune job: the trained student exported to ONNX, checked against tfjs and
 * published once (with metrics, lineage and curves), then the promotion policy applied to the version.
 */
import type { EvalResult, FineTuneJobSpec, FineTuneResult, JobContext } from '@deit-serve/trainer-engine';
import type { FineTuneJobOptions } from './fine-tune-job';
import type { PreparedRun } from './prepare-phase';
import { promotePublished, publishOnce, type PublishedMarker } from './publish';
import { describeEval, type TrainingRun } from './train-phase';
import { buildVersionRequest } from './version-request';

/** Samples the exported ONNX must reproduce unless the job's options say otherwise. */
export const DEFAULT_EXPORT_CHECK_SAMPLES = 8;

/** Exports, verifies and publishes the trained student (once, even across crashes). */
export async function publishTrained(
  run: TrainingRun,
  finalEval: EvalResult,
  options: FineTuneJobOptions,
): Promise<PublishedMarker> {
  const { ctx, prepared, trainer, state } = run;
  const { spec } = ctx;
  const log = (message: string): void => ctx.report.log(message);
  const marker = await publishOnce({
    registry: prepared.registry,
    model: spec.outputModel,
    jobId: ctx.jobId,
    workDir: ctx.workDir,
    finalEval,
    build: () =>
      buildVersionRequest({
        jobId: ctx.jobId,
        spec,
        sources: prepared.sources,
        trainer,
        finalEval,
        history: state.history,
        backend: prepared.backendName,
        evalInput: prepared.evalInput,
        exportCheckSamples: options.exportCheckSamples ?? DEFAULT_EXPORT_CHECK_SAMPLES,
        attempts: ctx.attempt,
        steps: state.globalStep,
        trainSeconds: state.trainSeconds,
      }),
    signal: ctx.signal,
    log,
    ...(options.publishHook !== undefined && { hook: options.publishHook }),
  });
  log(`published ${spec.outputModel}:${marker.version} (${describeEval(finalEval)})`);
  return marker;
}

/** Applies the spec's promotion policy to the published version; the job's result. */
export async function promote(
  ctx: JobContext<FineTuneJobSpec>,
  prepared: PreparedRun,
  published: PublishedMarker,
  options: FineTuneJobOptions,
): Promise<FineTuneResult> {
  const { data } = prepared.sources;
  const result = await promotePublished({
    registry: prepared.registry,
    spec: ctx.spec,
    published,
    evalSet: data.evalSetName,
    evalData: data.eval,
    serverDataRoots: options.serverDataRoots ?? [],
    signal: ctx.signal,
  });
  ctx.report.log(`promotion: ${result.promotionReason}`);
  await options.publishHook?.('after-promotion');
  return result;
}
