// Stress: the arrival rate ramps from START_RATE to MAX_RATE iterations/s in STEPS steps of STEP
// duration, past saturation; each iteration sends BURST Classify calls at once (asyncInvoke), so that
// MAX_VUS × BURST calls (40 × 24 = 960) can be in flight — more than the service's queue
// (DEIT_MAX_QUEUE_SIZE, 512 by default): with the defaults it reaches the queue limit. Calls get a
// TIMEOUT of 60 s here (not 10 s): a full queue takes seconds to drain on a small machine, and a call
// that waits in it must end served, not past its deadline. There the service must shed load gracefully —
// OK or RESOURCE_EXHAUSTED, never UNAVAILABLE, INTERNAL or a crash — and recover: the last stage drops
// back to START_RATE, and every call started there (after a settling pause) must be served.
//   START_RATE=10 MAX_RATE=400 STEPS=8 STEP=30s k6 run load-tests/stress.js
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';
import { config, classifyAsync, grpc, waitServing } from './lib/common.js';

const start = Number(__ENV.START_RATE || 10);
const max = Number(__ENV.MAX_RATE || 400);
const steps = Number(__ENV.STEPS || 8);
const step = __ENV.STEP || '30s';
const burst = Number(__ENV.BURST || 24);
const maxVUs = Number(__ENV.MAX_VUS || 40);
/** Seconds after the ramp down before calls count as the recovery's. */
const settle = Number(__ENV.SETTLE_S || 5);
const timeout = __ENV.TIMEOUT || '60s';

function seconds(duration) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(duration);
  if (!match) throw new Error(`STEP=${duration}: use e.g. 30s or 1m`);
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60 }[match[2]];
}

const stages = [];
for (let i = 1; i <= steps; i++)
  stages.push({ target: Math.round(start + ((max - start) * i) / steps), duration: step });
stages.push({ target: start, duration: '10s' }, { target: start, duration: step });
/** When the recovery stage's calls start counting, in seconds from the start of the scenario. */
const recoveryFrom = steps * seconds(step) + 10 + settle;

/** Calls answered RESOURCE_EXHAUSTED (load shedding). */
const shedCalls = new Counter('shed_calls');
/** Calls answered with anything but OK or RESOURCE_EXHAUSTED (or not answered). */
const unexpected = new Rate('unexpected_status');
/** Calls of the recovery stage served OK. */
const recovered = new Rate('recovery_ok');
const recoveryCalls = new Counter('recovery_calls');

export const options = {
  scenarios: {
    stress: {
      executor: 'ramping-arrival-rate',
      startRate: start,
      timeUnit: '1s',
      preAllocatedVUs: maxVUs,
      maxVUs,
      stages,
    },
  },
  thresholds: {
    // Served or shed, nothing else; anything else aborts the run.
    unexpected_status: [{ threshold: 'rate==0', abortOnFail: true, delayAbortEval: '10s' }],
    // It reached the queue limit and shed: the run proved the overload path, not only the happy one.
    shed_calls: ['count>0'],
    // Served answers stay correct (true class, version) under overload.
    checks: ['rate>0.99'],
    // Recovered: every call of the last stage served.
    recovery_calls: ['count>0'],
    recovery_ok: ['rate==1'],
    // Served calls still meet a (looser) latency bound under overload: a full queue drains in
    // DEIT_MAX_QUEUE_SIZE / throughput (512 at ~100 images/s on two busy cores: ~5 s).
    'grpc_req_duration{status:0}': [`p(95)<${Number(__ENV.STRESS_P95_MS || 10000)}`],
  },
};

export function setup() {
  return waitServing();
}

export default async function (model) {
  const first = exec.scenario.iterationInTest * burst;
  const inRecovery = (Date.now() - exec.scenario.startTime) / 1000 >= recoveryFrom;
  // The recovery stage offers START_RATE single calls/s, below capacity: bursts would keep it overloaded.
  const n = inRecovery ? 1 : burst;
  const calls = [];
  for (let i = 0; i < n; i++)
    calls.push(classifyAsync(first + i, model, [grpc.StatusResourceExhausted], timeout));
  for (const { status } of await Promise.all(calls)) {
    if (status === grpc.StatusResourceExhausted) shedCalls.add(1);
    unexpected.add(status !== grpc.StatusOK && status !== grpc.StatusResourceExhausted);
    if (inRecovery) {
      recoveryCalls.add(1);
      recovered.add(status === grpc.StatusOK);
    }
  }
}
