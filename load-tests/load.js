// Load: an open model at a constant arrival rate (RATE calls/s for DURATION), whatever the latency;
// k6 reports iterations it could not start in time as dropped_iterations. Latency SLOs as thresholds.
//   RATE=50 DURATION=2m k6 run load-tests/load.js
import { config, classify, waitServing } from './lib/common.js';

const maxVUs = Number(__ENV.MAX_VUS || Math.max(20, config.rate * 2));

export const options = {
  scenarios: {
    load: {
      executor: 'constant-arrival-rate',
      rate: config.rate,
      timeUnit: '1s',
      duration: config.duration,
      preAllocatedVUs: Math.min(maxVUs, Math.max(2, Math.ceil(config.rate / 4))),
      maxVUs,
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

export default function () {
  classify(__ITER);
}
