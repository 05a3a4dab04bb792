import type { InferenceMetrics } from '@deit-serve/inference-engine';
import type { oip } from '@deit-serve/proto';

type Histogram = InferenceMetrics['queueSeconds'];

/** Count and seconds summed per `model:version` of one of the engine's (model, version) histograms. */
async function sums(histogram: Histogram): Promise<Map<string, { count: number; seconds: number }>> {
  const out = new Map<string, { count: number; seconds: number }>();
  for (const { metricName, labels, value } of (await histogram.get()).values) {
    const key = `${String(labels['model'])}:${String(labels['version'])}`;
    const entry = out.get(key) ?? { count: 0, seconds: 0 };
    if (metricName?.endsWith('_count')) entry.count = value;
    else if (metricName?.endsWith('_sum')) entry.seconds = value;
    else continue;
    out.set(key, entry);
  }
  return out;
}

const duration = (s: { count: number; seconds: number } | undefined): oip.StatisticDuration => ({
  count: s?.count ?? 0,
  ns: Math.round((s?.seconds ?? 0) * 1e9),
});

/**
 * Triton's per-version statistics from the histograms Classify and ModelInfer both feed (one engine):
 * inference_count = items computed, execution_count = batches run, queue = time in the dynamic
 * batcher, compute_input = decoding and preprocessing, compute_infer = the forward pass of the batch
 * an item was part of, success = their sum. Writing outputs is not timed apart: compute_output has
 * compute_infer's count (clients such as perf_analyzer require the three counts equal) and 0 ns.
 * Failures are counted per method by `deit_requests_total`, not per version, so `fail` stays 0;
 * `last_inference` is not recorded (0).
 */
export async function versionStatistics(metrics: InferenceMetrics): Promise<Partial<oip.ModelStatistics>[]> {
  const [queue, compute, preprocess, batches] = await Promise.all([
    sums(metrics.queueSeconds),
    sums(metrics.computeSeconds),
    sums(metrics.preprocessSeconds),
    sums(metrics.batchSize),
  ]);
  return [...compute.keys()].sort().map((key) => {
    const at = key.lastIndexOf(':');
    const c = compute.get(key);
    const q = queue.get(key);
    const p = preprocess.get(key);
    const success = {
      count: c?.count ?? 0,
      seconds: (c?.seconds ?? 0) + (q?.seconds ?? 0) + (p?.seconds ?? 0),
    };
    return {
      name: key.slice(0, at),
      version: key.slice(at + 1),
      inferenceCount: batches.get(key)?.seconds ?? 0, // a batch-size histogram's sum is its items
      executionCount: batches.get(key)?.count ?? 0,
      inferenceStats: {
        success: duration(success),
        fail: duration(undefined),
        queue: duration(q),
        computeInput: duration(p),
        computeInfer: duration(c),
        computeOutput: duration(c && { count: c.count, seconds: 0 }),
        cacheHit: duration(undefined),
        cacheMiss: duration(undefined),
      },
    };
  });
}
