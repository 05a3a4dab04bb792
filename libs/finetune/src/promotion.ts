/**
 * The promotion policy: move alias A to the new version iff its average-head top-1 beats the version A
 * points at by at least δ, on the same evaluation set. The incumbent's number comes from its manifest
 * when it was measured on exactly this set (same name, which embeds the images' hash); otherwise the
 * incumbent is evaluated here, through onnxruntime with its own preprocessing. An alias that points
 * nowhere is always moved. Every decision carries its reason, which is also written to the alias history.
 * A protected alias moved for a caller without `admin` is judged on the incumbent's own set instead
 * (protected-promotion.ts): the caller chooses the job's evaluation set, so a gain there proves nothing.
 */
import { headLogits } from '@deit-serve/core';
import type { ImageDataset } from '@deit-serve/datasets';
import { inputSpecFromManifest } from '@deit-serve/preprocess';
import { labelsInOrder, type Manifest, type Metrics, type ModelRegistry } from '@deit-serve/registry';
import { OnnxModelSession } from '@deit-serve/runtime';
import type { PromotionPolicy } from '@deit-serve/trainer-engine';
import { top1Of } from './evaluate';
import { labelMismatch } from './sources';

export interface PromotionOutcome {
  readonly promoted: boolean;
  readonly reason: string;
}

export interface Incumbent {
  readonly version: number;
  readonly top1: number;
  /** Where the number comes from. */
  readonly source: 'manifest' | 'evaluated';
}

const fmt = (v: number): string => v.toFixed(4);

/** The head the policy compares: average of the two heads' logits, or CLS for a model with one head. */
export function policyTop1(metrics: Pick<Metrics, 'top1'>): number {
  return metrics.top1.avg ?? metrics.top1.cls;
}

/** The pure decision, given the incumbent (undefined: the alias points nowhere). */
export function decidePromotion(
  policy: PromotionPolicy,
  candidate: { readonly version: number; readonly top1: number },
  incumbent: Incumbent | undefined,
  evalSet: string,
): PromotionOutcome {
  const alias = policy.alias;
  if (incumbent === undefined) {
    return {
      promoted: true,
      reason: `alias ${alias} pointed nowhere: moved to v${candidate.version} (avg top-1 ${fmt(candidate.top1)} on ${evalSet})`,
    };
  }
  const gain = candidate.top1 - incumbent.top1;
  const measured = incumbent.source === 'manifest' ? 'from its manifest' : 'evaluated now';
  const comparison =
    `v${candidate.version} avg top-1 ${fmt(candidate.top1)} vs v${incumbent.version} ${fmt(incumbent.top1)} ` +
    `(${measured}) on ${evalSet}: improvement ${fmt(gain)}`;
  // A tiny epsilon so that δ = 0 and equal accuracies promote despite float noise in the subtraction.
  if (gain >= policy.minImprovement - 1e-12) {
    return {
      promoted: true,
      reason: `${comparison} ≥ δ ${policy.minImprovement}: moved ${alias} v${incumbent.version} → v${candidate.version}`,
    };
  }
  return {
    promoted: false,
    reason: `${comparison} < δ ${policy.minImprovement}: ${alias} stays at v${incumbent.version}`,
  };
}

export interface ApplyPromotionOptions {
  readonly registry: ModelRegistry;
  readonly model: string;
  readonly version: number;
  readonly candidateTop1: number;
  readonly evalSet: string;
  readonly evalData: ImageDataset;
  readonly policy: PromotionPolicy | undefined;
  readonly signal?: AbortSignal;
}

export async function applyPromotion(options: ApplyPromotionOptions): Promise<PromotionOutcome> {
  const { registry, model, version, policy } = options;
  if (policy === undefined) return { promoted: false, reason: 'no promotion policy' };
  const target = (await registry.getAliases(model))[policy.alias];
  let incumbent: Incumbent | undefined;
  if (target !== undefined) {
    const info = await registry.getManifest(`${model}:${target}`, { integrity: 'size' });
    const metrics = info.manifest.metrics;
    if (metrics !== null && metrics.eval_set === options.evalSet) {
      incumbent = { version: target, top1: policyTop1(metrics), source: 'manifest' };
    } else {
      const mismatch = labelMismatch(labelsInOrder(info.manifest.labels), options.evalData.labelNames);
      if (mismatch !== undefined) {
        return {
          promoted: false,
          reason: `${policy.alias} points at v${target}, whose labels differ from the evaluation set's (${mismatch}): not comparable, alias not moved`,
        };
      }
      incumbent = {
        version: target,
        top1: await evaluateVersion(options, target, options.evalData),
        source: 'evaluated',
      };
    }
  }
  const outcome = decidePromotion(
    policy,
    { version, top1: options.candidateTop1 },
    incumbent,
    options.evalSet,
  );
  if (outcome.promoted) await registry.setAlias(model, policy.alias, version, { reason: outcome.reason });
  return outcome;
}

/** Top-1 (average head when there are two) of a registry version on `dataset`. */
export async function evaluateVersion(
  options: Pick<ApplyPromotionOptions, 'registry' | 'model' | 'signal'>,
  version: number,
  dataset: ImageDataset,
): Promise<number> {
  const loaded = await options.registry.loadVersion(`${options.model}:${version}`);
  const bytes = loaded.files.get('model.onnx');
  if (bytes === undefined) throw new Error(`${options.model}:${version} has no model.onnx`);
  const manifest: Manifest = loaded.manifest;
  const session = await OnnxModelSession.create(bytes, { logger: { warn: () => undefined } });
  try {
    const outputs = [
      manifest.outputs.cls,
      ...(manifest.outputs.dist === null ? [] : [manifest.outputs.dist]),
    ];
    const input = manifest.input;
    return await top1Of(
      async (pixels, dims) => {
        const out = await session.run({ [input.name]: { data: pixels, dims } });
        const [cls, dist] = outputs.map((name) => {
          const data = out[name]?.data;
          if (data === undefined) throw new Error(`${options.model}:${version} did not return ${name}`);
          return data;
        });
        return headLogits('average', cls, dist);
      },
      dataset,
      {
        batchSize: 64,
        inputSpec: inputSpecFromManifest(input),
        ...(options.signal !== undefined && { signal: options.signal }),
      },
    );
  } finally {
    await session.release();
  }
}
