// Shared by the k6 scripts: configuration from environment variables, the gRPC client, real image
// payloads, and the checked Classify call. See load-tests/README.md.
import grpc from 'k6/net/grpc';
import encoding from 'k6/encoding';
import { check, fail, sleep } from 'k6';
import { Counter, Rate } from 'k6/metrics';

const HEADS = { cls: 'HEAD_CLS', dist: 'HEAD_DIST', avg: 'HEAD_AVERAGE', average: 'HEAD_AVERAGE' };

function number(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name}=${raw} is not a number`);
  return value;
}

function heads(raw) {
  const list = (raw || 'avg').split(',').map((h) => h.trim().toLowerCase());
  for (const h of list) if (!HEADS[h]) throw new Error(`HEAD=${raw}: each of cls, dist, avg`);
  return list.map((h) => HEADS[h]);
}

/** Everything the scripts read from the environment, with its default. */
export const config = {
  /** host:port of the inference service (a cluster: its headless Service or a port-forward). */
  addr: __ENV.ADDR || '127.0.0.1:50051',
  /** `name`, `name@alias` or `name:version`; empty: the service's default model. */
  model: __ENV.MODEL || '',
  /** Heads to request, in rotation: avg, cls, dist (comma-separated; default all three). */
  heads: heads(__ENV.HEAD || 'avg,cls,dist'),
  topK: number('TOP_K', 3),
  /** Sent as `authorization: Bearer TOKEN`: the service's own tokens (README "Security") or a gateway's. */
  token: __ENV.TOKEN || __ENV.DEIT_TOKEN || '',
  /** TLS instead of plaintext (TLS=1; implied by TLS_CA or TLS_CERT), to the service or an ingress. */
  tls: __ENV.TLS === '1' || __ENV.TLS === 'true' || !!__ENV.TLS_CA || !!__ENV.TLS_CERT,
  rate: number('RATE', 20),
  duration: __ENV.DURATION || '1m',
  /** Per-call deadline (stress.js: 60s unless set). */
  timeout: __ENV.TIMEOUT || '10s',
  /** Threshold on grpc_req_duration, milliseconds. */
  p95: number('P95_MS', 250),
  p99: number('P99_MS', 500),
  /** Seconds to wait in setup() for grpc.health.v1 SERVING (0: it must be serving already). */
  waitReady: number('WAIT_READY', 0),
  /** Fixture files sent (fixtures/labels.json names each one's true class); default: all of them. */
  images: __ENV.IMAGES ? __ENV.IMAGES.split(',').map((s) => s.trim()) : null,
};

// Init context only: the contracts (k6 resolves these paths from the main script's folder, load-tests/) and the images, read once per VU.
const client = new grpc.Client();
client.load(
  [__ENV.PROTO_DIR || '../proto'],
  'deit/inference/v1/inference.proto',
  'grpc/health/v1/health.proto',
);

// PEM files for TLS, read once (open() works in the init context only): the CA to trust instead of
// the system's, and a client certificate and key for mutual TLS.
const tlsFiles = {
  cacerts: __ENV.TLS_CA ? [open(__ENV.TLS_CA)] : undefined,
  cert: __ENV.TLS_CERT ? open(__ENV.TLS_CERT) : undefined,
  key: __ENV.TLS_KEY ? open(__ENV.TLS_KEY) : undefined,
};
if (!tlsFiles.cert !== !tlsFiles.key) throw new Error('TLS_CERT and TLS_KEY go together');

/** client.connect() parameters: plaintext, or TLS with the files above. */
function connectParams(timeout) {
  if (!config.tls) return { plaintext: true, timeout };
  const tls = {};
  for (const [k, v] of Object.entries(tlsFiles)) if (v) tls[k] = v;
  return Object.keys(tls).length ? { plaintext: false, timeout, tls } : { plaintext: false, timeout };
}

/** The true class of each fixture image (real Fashion-MNIST test images, fixtures/make-fixtures.mjs). */
const trueClasses = JSON.parse(open('../fixtures/labels.json'));

/** The fixture images, base64-encoded for the `bytes image` field (protobuf JSON mapping), with their class. */
export const payloads = (config.images || Object.keys(trueClasses)).map((name) => {
  const label = trueClasses[name];
  if (!label) throw new Error(`IMAGES: ${name} has no true class in fixtures/labels.json`);
  return { name, label, image: encoding.b64encode(open(`../fixtures/${name}`, 'b')) };
});

/** Every image × head combination once: the calls smoke.js makes. */
export const combinations = payloads.length * config.heads.length;

/** The image and head of call number `iteration`: all images with the first head, then the next head... */
export function combination(iteration) {
  return {
    payload: payloads[iteration % payloads.length],
    head: config.heads[Math.floor(iteration / payloads.length) % config.heads.length],
  };
}

/** Calls that did not end in OK, by the scripts' own count (connection failures included). */
export const grpcErrors = new Rate('grpc_errors');
/** Responses by the model version that produced them (tag `version`). */
export const responsesByVersion = new Counter('responses_by_version');

const params = (timeout = config.timeout) => {
  const p = { timeout };
  if (config.token) p.metadata = { authorization: `Bearer ${config.token}` };
  return p;
};

let connected = false;

/**
 * Connects once per VU; a refused connection is a failed check and an error, not a silent skip.
 * `timeout`: how long the connection may take (stress.js gives its call timeout: a saturated host is slow
 * to accept).
 */
export function connect(timeout = '10s') {
  if (connected) return true;
  try {
    client.connect(config.addr, connectParams(timeout));
    connected = true;
  } catch (error) {
    check(null, { 'connected to the service': () => false });
    grpcErrors.add(1, { reason: 'connect' });
    console.error(`cannot connect to ${config.addr}: ${error}`);
    sleep(1);
  }
  return connected;
}

export function close() {
  if (connected) client.close();
  connected = false;
}

export function healthStatus() {
  const res = client.invoke('grpc.health.v1.Health/Check', { service: '' }, params());
  return res && res.status === grpc.StatusOK ? res.message.status : `grpc status ${res && res.status}`;
}

/**
 * setup(): waits (WAIT_READY seconds at most) until the service reports SERVING, then describes the
 * model under test. Aborts the run when the service is not there: nothing else would make sense.
 */
export function waitServing() {
  const deadline = Date.now() + config.waitReady * 1000;
  let last = 'not connected';
  for (;;) {
    try {
      if (!connected) {
        client.connect(config.addr, connectParams('5s'));
        connected = true;
      }
      last = healthStatus();
      if (last === 'SERVING') break;
    } catch (error) {
      last = String(error);
      connected = false;
    }
    if (Date.now() >= deadline) fail(`${config.addr} is not SERVING: ${last}`);
    sleep(1);
  }
  const res = client.invoke('deit.inference.v1.InferenceService/GetModel', { model: config.model }, params());
  if (!res || res.status !== grpc.StatusOK)
    fail(`GetModel(${config.model || 'default'}) failed: ${res && res.error && res.error.message}`);
  const m = res.message;
  console.log(
    `${config.addr}: ${m.model.name}:${m.model.version} (${m.architecture}, ${m.input.imageSize}px, ${m.labels.length} labels); ` +
      `images ${payloads.map((p) => p.name).join(', ')}`,
  );
  close();
  return { name: m.model.name, version: m.model.version, sha256: m.model.sha256, labels: m.labels.length };
}

/**
 * ListModels, checked: the model under test is listed with the version GetModel reported (setup's
 * `model`). A failed call or a missing model is a failed check.
 */
export function checkListing(model) {
  if (!connect()) return;
  const res = client.invoke('deit.inference.v1.InferenceService/ListModels', {}, params());
  const ok = res && res.status === grpc.StatusOK;
  grpcErrors.add(!ok, { status: String(res ? res.status : -1), method: 'ListModels' });
  const listed = ok ? (res.message.models || []).find((m) => m.name === model.name) : undefined;
  check(res, {
    'ListModels is OK': () => ok,
    'ListModels lists the model under test with its version': () =>
      !!listed && (listed.versions || []).map(Number).includes(Number(model.version)),
  });
  if (!listed)
    console.warn(
      `ListModels: ${model.name} not listed (${ok ? JSON.stringify(res.message) : res && res.error && res.error.message})`,
    );
}

/**
 * One Classify call with a real encoded image (call number `iteration` picks the image × head, see
 * combination()), checked: OK, the requested head and top-k, valid probabilities, the image's true
 * class as top-1, and the version that answered — the one GetModel reported in setup (`model`), unless
 * `model` is null (a reload changes it mid-run). Returns the response (or null).
 * `acceptable` lists status codes that count as handled (stress: RESOURCE_EXHAUSTED is load shedding).
 */
export function classify(iteration, model, acceptable = []) {
  if (!connect()) return null;
  const res = client.invoke('deit.inference.v1.InferenceService/Classify', request(iteration), params());
  return judge(iteration, model, res, acceptable);
}

/** The Classify request of call number `iteration`. */
export function request(iteration) {
  const { payload, head } = combination(iteration);
  return { model: config.model, image: payload.image, head, topK: config.topK };
}

/**
 * Classify without waiting (stress: many calls in flight per VU). Resolves to the call's gRPC status
 * (-1: no answer) and what judge() returned.
 */
export function classifyAsync(iteration, model, acceptable = [], timeout = config.timeout) {
  if (!connect(timeout)) return Promise.resolve({ status: -1, message: null });
  return client
    .asyncInvoke('deit.inference.v1.InferenceService/Classify', request(iteration), params(timeout))
    .then(
      (res) => ({ status: res ? res.status : -1, message: judge(iteration, model, res, acceptable) }),
      (error) => {
        grpcErrors.add(1, { status: '-1' });
        console.warn(`Classify: ${error}`);
        return { status: -1, message: null };
      },
    );
}

/** The checks of one Classify answer (see classify()). */
export function judge(iteration, model, res, acceptable = []) {
  const { payload, head } = combination(iteration);
  const status = res ? res.status : -1;
  const ok = status === grpc.StatusOK;
  grpcErrors.add(!ok, { status: String(status) });
  if (!ok && acceptable.includes(status)) return null;
  const m = ok ? res.message : null;
  check(res, {
    'status is OK': () => ok,
    'answered with the head asked for': () => ok && m.head === head,
    'top-k predictions, probabilities in [0, 1], descending': () =>
      ok &&
      m.predictions.length === config.topK &&
      m.predictions.every(
        (p, i) =>
          p.probability >= 0 &&
          p.probability <= 1 &&
          (i === 0 || p.probability <= m.predictions[i - 1].probability),
      ),
    'names the exact model version': () => ok && m.model.version > 0 && /^[0-9a-f]{64}$/.test(m.model.sha256),
    'answered by the version GetModel reports': () =>
      ok &&
      (!model || (Number(m.model.version) === Number(model.version) && m.model.sha256 === model.sha256)),
    'predicts the true class': () =>
      ok && m.predictions.length > 0 && m.predictions[0].label === payload.label,
    'reports head disagreement': () => ok && m.disagreement !== undefined && m.disagreement !== null,
  });
  if (ok && m.predictions.length > 0 && m.predictions[0].label !== payload.label) {
    console.warn(`Classify ${payload.name} (${head}): ${m.predictions[0].label}, not ${payload.label}`);
  }
  if (!ok) {
    console.warn(
      `Classify ${payload.name}: status ${status}: ${res && res.error ? res.error.message : 'no response'}`,
    );
    if (status === grpc.StatusUnavailable) close(); // reconnect on the next call
    return null;
  }
  responsesByVersion.add(1, { version: String(m.model.version) });
  return m;
}

export { grpc };
