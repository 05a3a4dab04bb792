// Soak: a moderate constant arrival rate for a long time (DURATION, default 1h). Catches what only
// time shows: latency creeping up, memory growing (server RSS read from its Prometheus endpoint before
// and after), connections or errors accumulating.
//   RATE=20 DURATION=1h METRICS_URL=http://127.0.0.1:9464/metrics k6 run load-tests/soak.js
import { fail } from 'k6';
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';
import { config, classify, waitServing } from './lib/common.js';

const duration = __ENV.DURATION || '1h';
const metricsUrl = __ENV.METRICS_URL || `http://${config.addr.replace(/:\d+$/, '')}:9464/metrics`;
// Every VU started before the run (see load.js): Little's law at the p99 bound, four times over.
const vus = Number(__ENV.MAX_VUS || Math.max(20, Math.ceil((config.rate * config.p99 * 4) / 1000)));

/** grpc latency in the last fifth of the run, against the same bound: no creeping. */
const lateLatency = new Trend('late_classify_ms', true);
/** Server RSS after the run / before it (teardown). */
const rssGrowth = new Trend('server_rss_growth');
/** RSS read before and after the run (teardown adds 1): none means memory growth went unchecked. */
const rssMeasured = new Counter('server_rss_measured');

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: config.rate,
      timeUnit: '1s',
      duration,
      preAllocatedVUs: vus,
      maxVUs: vus,
    },
  },
  thresholds: {
    checks: ['rate>0.999'],
    grpc_errors: ['rate<0.001'],
    grpc_req_duration: [`p(95)<${config.p95}`, `p(99)<${config.p99}`],
    late_classify_ms: [`p(95)<${config.p95}`],
    dropped_iterations: [`count<=${Number(__ENV.MAX_DROPPED || 0)}`],
    server_rss_growth: [`max<${Number(__ENV.MAX_RSS_GROWTH || 1.5)}`],
    // Metrics unreadable after the run (teardown fails before adding it) fails the run too.
    server_rss_measured: ['count==1'],
  },
};

/** The server's RSS from its Prometheus endpoint; the run fails when it cannot be read. */
function rss(when) {
  const res = http.get(metricsUrl, { timeout: '5s' });
  const match = res.status === 200 ? /^process_resident_memory_bytes (\S+)$/m.exec(res.body) : null;
  if (!match) {
    fail(
      `${when}: no process_resident_memory_bytes at ${metricsUrl} (HTTP ${res.status}${res.error ? `: ${res.error}` : ''}): memory growth cannot be checked; set METRICS_URL`,
    );
  }
  return Number(match[1]);
}

export function setup() {
  const model = waitServing();
  return { model, rssBefore: rss('before the run') };
}

export default function (data) {
  const started = Date.now();
  const res = classify(exec.scenario.iterationInTest, data.model);
  const progress = exec.scenario.progress;
  if (res && progress >= 0.8) lateLatency.add(Date.now() - started);
}

export function teardown(data) {
  const after = rss('after the run');
  const growth = after / data.rssBefore;
  console.log(
    `server RSS ${(data.rssBefore / 2 ** 20).toFixed(0)} MiB → ${(after / 2 ** 20).toFixed(0)} MiB (×${growth.toFixed(2)})`,
  );
  rssGrowth.add(growth);
  rssMeasured.add(1);
}
