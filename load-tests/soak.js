// Soak: a moderate constant arrival rate for a long time (DURATION, default 1h). Catches what only
// time shows: latency creeping up, memory growing (server RSS read from its Prometheus endpoint before
// and after), connections or errors accumulating.
//   RATE=20 DURATION=1h METRICS_URL=http://127.0.0.1:9464/metrics k6 run load-tests/soak.js
import http from 'k6/http';
import { Trend } from 'k6/metrics';
import exec from 'k6/execution';
import { config, classify, waitServing } from './lib/common.js';

const duration = __ENV.DURATION || '1h';
const metricsUrl = __ENV.METRICS_URL || `http://${config.addr.replace(/:\d+$/, '')}:9464/metrics`;
const maxVUs = Number(__ENV.MAX_VUS || Math.max(20, config.rate * 2));

/** grpc latency in the last fifth of the run, against the same bound: no creeping. */
const lateLatency = new Trend('late_classify_ms', true);
/** Server RSS after the run / before it (teardown). */
const rssGrowth = new Trend('server_rss_growth');

export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 20),
      timeUnit: '1s',
      duration,
      preAllocatedVUs: Math.min(maxVUs, 10),
      maxVUs,
    },
  },
  thresholds: {
    checks: ['rate>0.999'],
    grpc_errors: ['rate<0.001'],
    grpc_req_duration: [`p(95)<${config.p95}`, `p(99)<${config.p99}`],
    late_classify_ms: [`p(95)<${config.p95}`],
    dropped_iterations: [`count<=${Number(__ENV.MAX_DROPPED || 0)}`],
    server_rss_growth: [`max<${Number(__ENV.MAX_RSS_GROWTH || 1.5)}`],
  },
};

function rss() {
  const res = http.get(metricsUrl, { timeout: '5s' });
  const match = res.status === 200 ? /^process_resident_memory_bytes (\S+)$/m.exec(res.body) : null;
  return match ? Number(match[1]) : null;
}

export function setup() {
  const model = waitServing();
  return { ...model, rssBefore: rss() };
}

export default function () {
  const started = Date.now();
  const res = classify(__ITER);
  const progress = exec.scenario.progress;
  if (res && progress >= 0.8) lateLatency.add(Date.now() - started);
}

export function teardown(data) {
  const after = rss();
  if (data.rssBefore && after) {
    const growth = after / data.rssBefore;
    console.log(
      `server RSS ${(data.rssBefore / 2 ** 20).toFixed(0)} MiB → ${(after / 2 ** 20).toFixed(0)} MiB (×${growth.toFixed(2)})`,
    );
    rssGrowth.add(growth);
  } else {
    console.warn(`no process_resident_memory_bytes at ${metricsUrl}: memory growth not checked`);
    rssGrowth.add(0);
  }
}
