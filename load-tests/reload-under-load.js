// Reload under load: constant traffic while a new model version is promoted (hot reload). Demands
// zero failed requests, and — with EXPECT_VERSION — that answers came from the old version and then
// from EXPECT_VERSION. The promotion happens outside k6: run it through reload-under-load.sh, which
// starts this script, runs PROMOTE_CMD after PROMOTE_AFTER seconds, and returns k6's verdict.
//   EXPECT_VERSION=2 PROMOTE_CMD='npx deit models promote fmnist-deit:2 --alias production' \
//     bash load-tests/reload-under-load.sh
import { Counter } from 'k6/metrics';
import { config, classify, waitServing } from './lib/common.js';

const expected = __ENV.EXPECT_VERSION ? Number(__ENV.EXPECT_VERSION) : null;
const fromExpected = new Counter('responses_from_expected_version');
const fromOthers = new Counter('responses_from_other_versions');
const maxVUs = Number(__ENV.MAX_VUS || Math.max(20, config.rate * 2));

const thresholds = {
  checks: ['rate==1'],
  grpc_errors: ['rate==0'],
  grpc_req_duration: [`p(99)<${config.p99}`],
  dropped_iterations: [`count<=${Number(__ENV.MAX_DROPPED || 0)}`],
};
if (expected !== null) {
  thresholds.responses_from_expected_version = ['count>0'];
  thresholds.responses_from_other_versions = ['count>0'];
}

export const options = {
  scenarios: {
    reload: {
      executor: 'constant-arrival-rate',
      rate: config.rate,
      timeUnit: '1s',
      duration: __ENV.DURATION || '40s',
      preAllocatedVUs: Math.min(maxVUs, Math.max(2, Math.ceil(config.rate / 4))),
      maxVUs,
    },
  },
  thresholds,
};

export function setup() {
  const model = waitServing();
  if (expected !== null && model.version === expected) {
    throw new Error(`the service already serves version ${expected}: nothing would be reloaded`);
  }
  return model;
}

export default function () {
  const res = classify(__ITER);
  if (res && expected !== null) (res.model.version === expected ? fromExpected : fromOthers).add(1);
}
