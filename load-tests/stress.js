// Stress: the arrival rate ramps from START_RATE to MAX_RATE (calls/s) in STEPS steps of STEP
// duration, past saturation. Beyond capacity the service must shed load gracefully — OK or
// RESOURCE_EXHAUSTED (its bounded queue), never UNAVAILABLE, INTERNAL or a crash — and recover: the
// last stage drops back to START_RATE and must be served again. Where it saturates: the rate at which
// dropped_iterations, `shed` and latency take off in the output.
//   START_RATE=10 MAX_RATE=400 STEPS=8 STEP=30s k6 run load-tests/stress.js
import { Rate } from 'k6/metrics';
import { config, classify, grpc, waitServing } from './lib/common.js';

const start = Number(__ENV.START_RATE || 10);
const max = Number(__ENV.MAX_RATE || 400);
const steps = Number(__ENV.STEPS || 8);
const step = __ENV.STEP || '30s';
const maxVUs = Number(__ENV.MAX_VUS || 400);

const stages = [];
for (let i = 1; i <= steps; i++)
  stages.push({ target: Math.round(start + ((max - start) * i) / steps), duration: step });
stages.push({ target: start, duration: '10s' }, { target: start, duration: step });

/** Calls answered RESOURCE_EXHAUSTED (load shedding), as a share of all calls. */
const shed = new Rate('shed');

export const options = {
  scenarios: {
    stress: {
      executor: 'ramping-arrival-rate',
      startRate: start,
      timeUnit: '1s',
      preAllocatedVUs: Math.min(maxVUs, 50),
      maxVUs,
      stages,
    },
  },
  thresholds: {
    // Every call is either served or shed with RESOURCE_EXHAUSTED; anything else aborts the run.
    checks: [{ threshold: 'rate>0.99', abortOnFail: true, delayAbortEval: '20s' }],
    // Served calls still meet a (looser) latency bound under overload.
    'grpc_req_duration{status:0}': [`p(95)<${Number(__ENV.STRESS_P95_MS || 2000)}`],
  },
};

export function setup() {
  return waitServing();
}

export default function () {
  const res = classify(__ITER, [grpc.StatusResourceExhausted]);
  shed.add(res === null);
}
