// Smoke: one client, a few dozen Classify calls over every fixture image and head, plus the health,
// model and listing calls. Fails (non-zero exit) when a check fails or latency crosses the thresholds.
//   k6 run load-tests/smoke.js                 (ADDR=127.0.0.1:50051 by default)
import { config, classify, waitServing } from './lib/common.js';

export const options = {
  scenarios: {
    smoke: {
      executor: 'shared-iterations',
      vus: 1,
      iterations: Number(__ENV.ITERATIONS || 30),
      maxDuration: __ENV.DURATION || '2m',
    },
  },
  thresholds: {
    checks: ['rate==1'],
    grpc_errors: ['rate==0'],
    grpc_req_duration: [`p(95)<${config.p95}`, `p(99)<${config.p99}`],
    responses_by_version: ['count>0'],
  },
};

export function setup() {
  return waitServing();
}

export default function () {
  classify(__ITER);
}
