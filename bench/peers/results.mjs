// The pure parts of bench/peers/run.mjs: reading k6's summary, medians of repetitions, the ratios
// deit-serve / KServe and the targets of issue 26 (tested in tools/src/bench-peers.spec.ts).

/** Issue 26's acceptance: throughput ≥ 1.0× KServe's at each concurrency, c=1 p99 ≤ KServe's, peak RSS ≤ 1.1×. */
export const TARGETS = { throughputRatio: 1.0, p99RatioAtC1: 1.0, rssRatio: 1.1 };

/** The summary trend statistics k6 is asked for (--summary-trend-stats), as its summary names them. */
export const TREND_STATS = ['med', 'p(99)'];

/**
 * One k6 run's result from its handleSummary JSON: successful calls per second over the run, client
 * p50 and p99 of grpc_req_duration (ms), and the calls that failed.
 */
export function parseK6Summary(summary) {
  const metrics = summary?.metrics;
  const duration = metrics?.grpc_req_duration?.values;
  const seconds = summary?.state?.testRunDurationMs / 1000;
  if (!duration || !(seconds > 0)) {
    throw new Error('k6 summary without grpc_req_duration or a run duration: did any ModelInfer call run?');
  }
  const ok = metrics.infer_ok?.values?.count ?? 0;
  return {
    throughput: ok / seconds,
    p50: duration.med,
    p99: duration['p(99)'],
    ok,
    failed: metrics.infer_failed?.values?.count ?? 0,
  };
}

/** The median (the mean of the middle two for an even count). */
export function median(values) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Repetitions of one server at one concurrency → the median of each figure, failures summed.
 * `cpuMsPerCall` (set by run.mjs from /proc): the server process's CPU time, all threads, per call.
 */
export function combineRepetitions(runs) {
  return {
    throughput: median(runs.map((r) => r.throughput)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    cpuMsPerCall: median(runs.map((r) => r.cpuMsPerCall ?? NaN)),
    failed: runs.reduce((sum, r) => sum + r.failed, 0),
    reps: runs.length,
  };
}

/**
 * deit/KServe ratios and the targets. `deit` and `kserve`: { byConcurrency: Map<c, combined>,
 * peakRssMb }. The c=1 p99 target is judged only when c=1 was measured.
 */
export function judge(deit, kserve) {
  const concurrencies = [...deit.byConcurrency.keys()].filter((c) => kserve.byConcurrency.has(c));
  const throughput = concurrencies.map((c) => {
    const ratio = deit.byConcurrency.get(c).throughput / kserve.byConcurrency.get(c).throughput;
    return { c, ratio, pass: ratio >= TARGETS.throughputRatio };
  });
  const checks = throughput.map(({ c, ratio, pass }) => ({
    name: `throughput c=${c}`,
    ratio,
    target: `>= ${TARGETS.throughputRatio.toFixed(2)}`,
    pass,
  }));
  if (deit.byConcurrency.has(1) && kserve.byConcurrency.has(1)) {
    const ratio = deit.byConcurrency.get(1).p99 / kserve.byConcurrency.get(1).p99;
    checks.push({
      name: 'p99 c=1',
      ratio,
      target: `<= ${TARGETS.p99RatioAtC1.toFixed(2)}`,
      pass: ratio <= TARGETS.p99RatioAtC1,
    });
  }
  const rss = deit.peakRssMb / kserve.peakRssMb;
  checks.push({
    name: 'peak RSS',
    ratio: rss,
    target: `<= ${TARGETS.rssRatio.toFixed(2)}`,
    pass: rss <= TARGETS.rssRatio,
  });
  return checks;
}

/** Right-aligned columns after the first; `rows[0]` is the header. */
export function formatTable(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i === 0 ? String(cell).padEnd(widths[i]) : String(cell).padStart(widths[i])))
        .join('  '),
    )
    .join('\n');
}

/**
 * The comparison table: per server, img/s, p50 and p99 at each concurrency, peak RSS, then the
 * server's CPU ms per call at each concurrency.
 */
export function resultTable(servers, concurrencies) {
  const f = (v, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
  const header = [
    '',
    ...concurrencies.map((c) => `c=${c} img/s, p50, p99 ms`),
    'peak RSS MiB',
    ...concurrencies.map((c) => `CPU ms/call c=${c}`),
    'failed',
  ];
  const rows = servers.map(({ label, byConcurrency, peakRssMb }) => [
    label,
    ...concurrencies.map((c) => {
      const r = byConcurrency.get(c);
      return `${f(r.throughput)}, ${f(r.p50)}, ${f(r.p99)}`;
    }),
    f(peakRssMb, 0),
    ...concurrencies.map((c) => f(byConcurrency.get(c).cpuMsPerCall)),
    String(concurrencies.reduce((sum, c) => sum + byConcurrency.get(c).failed, 0)),
  ]);
  return formatTable([header, ...rows]);
}
