/**
 * The publish phase of a fine-tune job, exactly once per job whatever kills it and when.
 *
 * The version a job publishes names the job in its lineage (`job_id`). Before publishing, a job
 * looks first for its marker (`published.json` in its folder), then for a version of its output
 * model whose lineage names it: a trainer and worker killed together between the registry's rename
 * and the marker (a pod kill) left such a version and no marker, and the next attempt adopts it
 * instead of publishing the same weights again.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError } from '@deit-serve/core';
import type { ImageDataset } from '@deit-serve/datasets';
import type { ModelRegistry, PublishRequest, VersionInfo } from '@deit-serve/registry';
import type { EvalResult, FineTuneJobSpec, FineTuneResult } from '@deit-serve/trainer-engine';
import { writeFileAtomic } from './checkpoint';
import { policyTop1 } from './promotion';
import { applyGuardedPromotion } from './protected-promotion';

export const PUBLISHED_MARKER = 'published.json';

/** What the publish phase leaves for the promotion policy and the job's result. */
export interface PublishedMarker {
  readonly version: number;
  readonly sha256: string;
  readonly finalEval: EvalResult;
}

/**
 * Points of the publish phase where a test may kill the job: nothing published yet (the request is
 * built), the version in the registry without a marker, the marker written, the alias moved.
 */
export type PublishStep = 'before-publish' | 'after-publish' | 'after-marker' | 'after-promotion';

/** Called at each {@link PublishStep}; tests throw or kill the process there. */
export type PublishHook = (step: PublishStep) => void | Promise<void>;

/** The version of `model` that job `jobId` published, newest first; undefined when there is none. */
export async function findVersionOfJob(
  registry: ModelRegistry,
  model: string,
  jobId: string,
): Promise<VersionInfo | undefined> {
  let versions: number[];
  try {
    versions = await registry.listVersions(model);
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
  for (const version of [...versions].reverse()) {
    const info = await registry.getManifest(`${model}:${version}`, { integrity: 'size' });
    if (info.manifest.lineage?.job_id === jobId) return info;
  }
  return undefined;
}

export interface PublishOnceOptions {
  readonly registry: ModelRegistry;
  readonly model: string;
  readonly jobId: string;
  /** The job's folder, where the marker lives. */
  readonly workDir: string;
  readonly finalEval: EvalResult;
  /** Builds the version (export and its check); called only when the job has published nothing yet. */
  readonly build: () => Promise<PublishRequest>;
  readonly hook?: PublishHook;
  readonly log?: (message: string) => void;
  readonly signal?: AbortSignal;
}

/**
 * What this job already published (its marker, else a version whose lineage names it), or
 * undefined. An adopted version gets its marker now, so the next look is a file read.
 */
export async function findPublished(
  options: Pick<PublishOnceOptions, 'registry' | 'model' | 'jobId' | 'workDir' | 'log'>,
): Promise<PublishedMarker | undefined> {
  const marker = await readMarker(options.workDir);
  if (marker !== undefined) return marker;
  const info = await findVersionOfJob(options.registry, options.model, options.jobId);
  if (info === undefined) return undefined;
  const adopted: PublishedMarker = {
    version: info.version,
    sha256: info.manifest.files['model.onnx']?.sha256 ?? '',
    finalEval: await finalEvalOf(options.registry, info),
  };
  await writeMarker(options.workDir, adopted);
  options.log?.(
    `${options.model}:${info.version} names this job in its lineage: an earlier attempt published it ` +
      'before it could record that; adopted instead of publishing again',
  );
  return adopted;
}

/** Publishes the job's version unless it already did (see the module comment). */
export async function publishOnce(options: PublishOnceOptions): Promise<PublishedMarker> {
  const earlier = await findPublished(options);
  if (earlier !== undefined) return earlier;
  const request = await options.build();
  if (request.lineage?.job_id !== options.jobId) {
    throw new Error(`the version to publish must name job ${options.jobId} in its lineage`);
  }
  await options.hook?.('before-publish');
  options.signal?.throwIfAborted();
  const info = await options.registry.publish(options.model, request);
  await options.hook?.('after-publish');
  const marker: PublishedMarker = {
    version: info.version,
    sha256: info.manifest.files['model.onnx']?.sha256 ?? '',
    finalEval: options.finalEval,
  };
  await writeMarker(options.workDir, marker);
  await options.hook?.('after-marker');
  return marker;
}

async function readMarker(workDir: string): Promise<PublishedMarker | undefined> {
  let text: string;
  try {
    text = await readFile(join(workDir, PUBLISHED_MARKER), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return JSON.parse(text) as PublishedMarker;
}

async function writeMarker(workDir: string, marker: PublishedMarker): Promise<void> {
  await writeFileAtomic(join(workDir, PUBLISHED_MARKER), new TextEncoder().encode(JSON.stringify(marker)));
}

/** The final evaluation a job stored with its version (`training.json`), for an adopted version. */
async function finalEvalOf(registry: ModelRegistry, info: VersionInfo): Promise<EvalResult> {
  const ref = `${info.model}:${info.version}`;
  const loaded = await registry.loadVersion(ref, { files: ['training.json'] });
  const bytes = loaded.files.get('training.json');
  const finalEval = bytes && (JSON.parse(bytes.toString('utf8')) as { final_eval?: EvalResult }).final_eval;
  if (finalEval === undefined) throw new Error(`${ref} has no final evaluation in its training.json`);
  return finalEval;
}

/** The promotion policy applied to the published version, and the job's result. */
export async function promotePublished(options: {
  readonly registry: ModelRegistry;
  readonly spec: FineTuneJobSpec;
  readonly published: PublishedMarker;
  /** The job's own evaluation set (the caller's choice). */
  readonly evalSet: string;
  readonly evalData: ImageDataset;
  readonly serverDataRoots: readonly string[];
  readonly signal?: AbortSignal;
}): Promise<FineTuneResult> {
  const { spec, published } = options;
  const { finalEval } = published;
  const outcome = await applyGuardedPromotion({
    registry: options.registry,
    model: spec.outputModel,
    version: published.version,
    candidateTop1: policyTop1({
      top1: {
        cls: finalEval.cls?.top1 ?? 0,
        dist: finalEval.dist?.top1 ?? null,
        avg: finalEval.average?.top1 ?? null,
      },
    }),
    evalSet: options.evalSet,
    evalData: options.evalData,
    policy: spec.promotion,
    serverDataRoots: options.serverDataRoots,
    ...(options.signal !== undefined && { signal: options.signal }),
  });
  return {
    model: spec.outputModel,
    version: published.version,
    sha256: published.sha256,
    finalEval,
    promoted: outcome.promoted,
    promotionReason: outcome.reason,
  };
}
