// Load: an open model at a constant arrival rate (RATE calls/s for DURATION), whatever the latency;
// k6 reports iterations it could not start in time as dropped_iterations. Latency SLOs as thresholds.
// Every VU is started before the run (preAllocatedVUs = maxVUs): a VU started mid-run takes its init
// (contracts, images) out of the measured time, and k6 drops iterations meanwhile.
//   RATE=50 DURATION=2m k6 run load-tests/load.js
import exec from 'k6/execution';
import { config, classify, waitServing } from './lib/common.js';

// Little's law with a margin: calls in flight = rate × latency; at the p99 bound, four times over
// (latency spikes on a busy machine would otherwise leave no VU free and drop iterations).
const vus = Number(__ENV.MAX_VUS || Math.max(20, Math.ceil((config.rate * config.p99 * 4) / 1000)));

export const options = {
  scenarios: {
    load: {
      executor: 'constant-arrival-rate',
      rate: config.rate,
      timeUnit: '1s',
      duration: config.duration,
      preAllocatedVUs: vus,
      maxVUs: vus,
    },
  },
  thresholds: {
    checks: ['rate>0.999'],
    grpc_errors: ['rate<0.001'],
    grpc_req_duration: [`p(95)<${config.p95}`, `p(99)<${config.p99}`],
    // Not keeping up with the arrival rate is a failure of the SLO too.
    dropped_iterations: [`count<=${Number(__ENV.MAX_DROPPED || 0)}`],
  },
};

export function setup() {
  return waitServing();
}

export default function (model) {
  classify(exec.scenario.iterationInTest, model);
}
