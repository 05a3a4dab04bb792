// Reload under load: constant traffic while another model version is promoted (hot reload). Demands
// zero failed requests, every answer correct (true class) and from the version served before or the
// promoted one, and — with EXPECT_VERSION — answers from both, and once a client had an answer from
// EXPECT_VERSION, none from the old version after it. The promotion happens outside k6: run it through
// reload-under-load.sh, which starts this script, runs PROMOTE_CMD after PROMOTE_AFTER seconds, and
// returns k6's verdict (README.md, "Reload under load", for the recipe on this repository's registry).
import exec from 'k6/execution';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { config, classify, waitServing } from './lib/common.js';

const expected = __ENV.EXPECT_VERSION ? Number(__ENV.EXPECT_VERSION) : null;
const fromExpected = new Counter('responses_from_expected_version');
const fromOthers = new Counter('responses_from_other_versions');
/** Answers from the old version to calls sent after this client had an answer from the new one. */
const oldAfterNew = new Counter('old_version_after_new');
const vus = Number(__ENV.MAX_VUS || Math.max(20, Math.ceil((config.rate * config.p99 * 4) / 1000)));

const thresholds = {
  checks: ['rate==1'],
  grpc_errors: ['rate==0'],
  grpc_req_duration: [`p(99)<${config.p99}`],
  dropped_iterations: [`count<=${Number(__ENV.MAX_DROPPED || 0)}`],
};
if (expected !== null) {
  thresholds.responses_from_expected_version = ['count>0'];
  thresholds.responses_from_other_versions = ['count>0'];
  thresholds.old_version_after_new = ['count==0'];
}

export const options = {
  scenarios: {
    reload: {
      executor: 'constant-arrival-rate',
      rate: config.rate,
      timeUnit: '1s',
      duration: __ENV.DURATION || '40s',
      preAllocatedVUs: vus,
      maxVUs: vus,
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

/** Per VU (one connection, calls in order): whether this client has had an answer from the new version. */
let sawExpected = false;

export default function (before) {
  // The version changes mid-run: each answer must come from the version served before or EXPECT_VERSION.
  const res = classify(exec.scenario.iterationInTest, null);
  if (!res) return;
  const version = Number(res.model.version);
  check(res, {
    'answered by the version served before or the promoted one': () =>
      version === Number(before.version) || (expected !== null && version === expected),
  });
  if (expected === null) return;
  if (version === expected) {
    sawExpected = true;
    fromExpected.add(1);
  } else {
    fromOthers.add(1);
    if (sawExpected) {
      oldAfterNew.add(1);
      console.warn(`version ${version} answered after version ${expected} had (VU ${exec.vu.idInTest})`);
    }
  }
}
