// Smoke: one client; every image × head combination once (ITERATIONS: 30 real Fashion-MNIST images ×
// 3 heads = 90 Classify calls by default), each checked against the image's true class and the version
// GetModel reports; plus the health (setup), GetModel (setup) and ListModels calls. Fails (non-zero
// exit) when a check fails or latency crosses the thresholds.
//   k6 run load-tests/smoke.js                 (ADDR=127.0.0.1:50051 by default)
import exec from 'k6/execution';
import { checkListing, classify, combinations, config, waitServing } from './lib/common.js';

export const options = {
  scenarios: {
    smoke: {
      executor: 'shared-iterations',
      vus: 1,
      iterations: Number(__ENV.ITERATIONS || combinations),
      maxDuration: __ENV.DURATION || '2m',
    },
  },
  thresholds: {
    checks: ['rate==1'],
    grpc_errors: ['rate==0'],
    grpc_req_duration: [`p(95)<${config.p95}`, `p(99)<${config.p99}`],
    responses_by_version: [`count>=${Number(__ENV.ITERATIONS || combinations)}`],
  },
};

export function setup() {
  return waitServing();
}

export default function (model) {
  const iteration = exec.scenario.iterationInTest;
  if (iteration === 0) checkListing(model);
  classify(iteration, model);
}
