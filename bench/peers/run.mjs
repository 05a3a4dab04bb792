#!/usr/bin/env node
// deit-serve against a peer, side by side (issue 26): KServe's Python model server.
//
//   npm run bench:peers [-- --seconds S --reps N --concurrency 1,8,32 --warm-seconds S --no-build --cpu-prof DIR]
//
// 1. Builds (SWC) and exports deit_tiny_distilled_patch16_224 with random weights into a temporary
//    registry, as bench/inference does; the same model.onnx is KServe's model file.
// 2. Makes reports/.venv-kserve from bench/peers/requirements.txt (kserve 0.21.0, onnxruntime 1.30.0
//    CPU; pip, once; again when the file changes) and starts both servers as child processes:
//    dist/apps/inference/src/main.js (its defaults: dynamic batching) and bench/peers/kserve_model.py
//    (onnxruntime with the service's session options).
// 3. The same k6 v1.8.1 closed-loop client (oip-infer.k6.js) calls ModelInfer of the Open Inference
//    Protocol's v2 gRPC on both with the same random FP32 tensor [1,3,224,224]; per concurrency the
//    runs are interleaved (deit, kserve, deit, kserve, ...) and the median of the repetitions is
//    reported. Peak RSS per server: VmRSS polled every 50 ms and VmHWM at the end.
// 4. Prints the table, the ratios deit/KServe and the issue's targets as PASS/FAIL. The exit code is
//    non-zero only when the benchmark itself fails (a server, k6 or a failed call); targets are
//    reported, not asserted.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { cpus, homedir, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { serviceEnv } from '../../tools/scripts/service-env.mjs';
import { combineRepetitions, judge, parseK6Summary, resultTable, TREND_STATS } from './results.mjs';

const root = join(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);

const { values: args } = parseArgs({
  options: {
    'no-build': { type: 'boolean' },
    seconds: { type: 'string', default: '10' },
    reps: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,8,32' },
    'warm-seconds': { type: 'string', default: '3' },
    // A directory for a V8 CPU profile of deit-serve (node --cpu-prof), written when it exits.
    'cpu-prof': { type: 'string' },
    // KEY=VALUE set in deit-serve's environment after the service's own (tools/scripts/service-env.mjs),
    // to try a setting; e.g. --deit-env NODE_OPTIONS= starts it without the service's V8 flags.
    'deit-env': { type: 'string', multiple: true, default: [] },
  },
});
const DEIT_ENV = Object.fromEntries(
  args['deit-env'].map((pair) => {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`--deit-env takes KEY=VALUE, got "${pair}"`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }),
);
const SECONDS = Number(args.seconds);
const REPS = Number(args.reps);
const CONCURRENCIES = args.concurrency.split(',').map(Number);
const WARM_SECONDS = Number(args['warm-seconds']);
if (![SECONDS, REPS, WARM_SECONDS, ...CONCURRENCIES].every((v) => Number.isFinite(v) && v > 0)) {
  throw new Error('--seconds, --reps, --warm-seconds and --concurrency must be positive numbers');
}
const MODEL = 'deit-tiny-bench';
/** timm's deit_tiny_distilled_patch16_224. */
const DEIT_TINY = {
  embedDim: 192,
  depth: 12,
  numHeads: 3,
  mlpRatio: 4,
  patchSize: 16,
  imgSize: 224,
  numClasses: 1000,
  distilled: true,
};
/** The unit of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const K6 = process.env.K6 ?? join(homedir(), '.cache', 'deit-serve', 'deploy-tools', 'bin', 'k6');
const VENV = join(root, 'reports', '.venv-kserve');
const REQUIREMENTS = join(import.meta.dirname, 'requirements.txt');
const PROTO_DIR = join(root, 'proto', 'third_party', 'oip');

const started = performance.now();
const log = (message) =>
  process.stderr.write(`[peers +${((performance.now() - started) / 1000).toFixed(0)}s] ${message}\n`);
const loadAtStart = loadavg();

if (!existsSync(K6)) {
  throw new Error(`k6 not found at ${K6}: tools/scripts/ci-deploy.sh --tools-only installs it (or set K6)`);
}

// ---------------------------------------------------------------------------------------------
// KServe's environment: a virtual environment from the pinned requirements, remade when they change.

function ensureVenv() {
  const stamp = join(VENV, 'requirements.sha256');
  const want = createHash('sha256').update(readFileSync(REQUIREMENTS)).digest('hex');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === want) return;
  log(`making ${VENV} from bench/peers/requirements.txt (pip; a few minutes the first time)`);
  const python = process.env.PYTHON ?? 'python3';
  for (const [cmd, argv] of [
    [python, ['-m', 'venv', VENV]],
    [join(VENV, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', '-r', REQUIREMENTS]],
  ]) {
    const r = spawnSync(cmd, argv, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (exit ${r.status})`);
  }
  writeFileSync(stamp, `${want}\n`);
}
ensureVenv();

if (!args['no-build']) {
  const build = spawnSync(process.execPath, [join(root, 'tools', 'scripts', 'build.mjs')], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  if (build.status !== 0) throw new Error(`build failed (exit ${build.status})`);
}

const dist = (path) => require(join(root, 'dist', path));
const { deitOnnxWeightShapes } = dist('libs/model/src/index.js');
const { randomWeights, randomPixels } = dist('libs/model/src/testing.js');
const { packageAndPublish } = dist('libs/packaging/src/index.js');
const { DirectoryRegistry } = dist('libs/registry/src/index.js');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

// ---------------------------------------------------------------------------------------------
// The model and the tensor, shared by both servers.

const workDir = mkdtempSync(join(tmpdir(), 'deit-peers-'));
const cleanups = [() => rmSync(workDir, { recursive: true, force: true })];
process.on('exit', () => cleanups.forEach((f) => f()));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

log('exporting deit_tiny_distilled_patch16_224 (random weights) into a temporary registry');
const registryDir = join(workDir, 'registry');
const registry = await DirectoryRegistry.open(registryDir, { create: true });
const published = await packageAndPublish(registry, MODEL, {
  spec: { architecture: 'deit', config: DEIT_TINY },
  preset: 'deit_tiny_distilled_patch16_224',
  weights: randomWeights(deitOnnxWeightShapes(DEIT_TINY), 1, 0.05),
  labels: Array.from({ length: DEIT_TINY.numClasses }, (_, i) => `class_${i}`),
  input: {
    image_size: 224,
    channels: 3,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    interpolation: 'bicubic',
    crop_pct: 0.875,
  },
});
const versionDir = join(registryDir, MODEL, String(published.version));
const modelFile = join(versionDir, 'model.onnx');
const inputName = JSON.parse(readFileSync(join(versionDir, 'manifest.json'), 'utf8')).input.name;
const tensorFile = join(workDir, 'tensor.f32');
const tensor = randomPixels(3 * 224 * 224, 7);
writeFileSync(tensorFile, new Uint8Array(tensor.buffer, tensor.byteOffset, tensor.byteLength));

// ---------------------------------------------------------------------------------------------
// The servers.

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A child process with its exit tracked and its peak RSS sampled from /proc. */
function startServer(label, cmd, argv, env) {
  const child = spawn(cmd, argv, {
    cwd: root,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const server = { label, child, env, exited: false, peakRssMb: 0 };
  server.exit = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      server.exited = true;
      resolve({ code, signal });
    }),
  );
  cleanups.unshift(() => server.exited || child.kill('SIGKILL'));
  server.memory = () => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
      return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
    } catch {
      return { rss: NaN, hwm: NaN };
    }
  };
  /** CPU time (user + system, ms) from a /proc stat file: utime and stime. */
  const statCpuMs = (path) => {
    const fields = readFileSync(path, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  };
  /** CPU time of the process, all its threads. */
  server.cpuMs = () => statCpuMs(`/proc/${child.pid}/stat`);
  /** CPU time per thread id (the main thread's id is the process id). */
  server.threadsCpuMs = () => {
    const threads = new Map();
    for (const tid of readdirSync(`/proc/${child.pid}/task`)) {
      try {
        threads.set(Number(tid), statCpuMs(`/proc/${child.pid}/task/${tid}/stat`));
      } catch {
        // The thread ended between the listing and the read.
      }
    }
    return threads;
  };
  server.sample = () => {
    const { rss, hwm } = server.memory();
    server.peakRssMb = Math.max(server.peakRssMb, ...[rss, hwm].filter(Number.isFinite));
  };
  return server;
}

const oip = grpc.loadPackageDefinition(
  protoLoader.loadSync(join(PROTO_DIR, 'grpc_service.proto'), { includeDirs: [PROTO_DIR], keepCase: true }),
).inference;

/** ModelReady over the Open Inference Protocol, polled until true. */
async function waitReady(server, address, timeoutMs) {
  const client = new oip.GRPCInferenceService(address, grpc.credentials.createInsecure());
  const until = Date.now() + timeoutMs;
  try {
    for (;;) {
      if (server.exited) throw new Error(`${server.label} exited during start-up`);
      const ready = await new Promise((resolve) =>
        client.ModelReady({ name: MODEL }, { deadline: Date.now() + 1000 }, (err, res) =>
          resolve(!err && res.ready),
        ),
      );
      if (ready) return;
      if (Date.now() > until) throw new Error(`${server.label}: model not ready after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    client.close();
  }
}

const [deitPort, deitMetricsPort, kservePort, kserveHttpPort] = await Promise.all([
  freePort(),
  freePort(),
  freePort(),
  freePort(),
]);
const deit = startServer(
  'deit-serve',
  process.execPath,
  [
    ...(args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', args['cpu-prof']] : []),
    join(root, 'dist', 'apps', 'inference', 'src', 'main.js'),
  ],
  {
    // Started as `npm start` and the container image start it (tools/scripts/service-env.mjs).
    ...serviceEnv('inference', {
      ...process.env,
      DEIT_GRPC_HOST: '127.0.0.1',
      DEIT_GRPC_PORT: String(deitPort),
      DEIT_METRICS_PORT: String(deitMetricsPort),
      DEIT_REGISTRY_DIR: registryDir,
      DEIT_DEFAULT_MODEL: MODEL,
      DEIT_LOG_LEVEL: 'warn',
    }),
    ...DEIT_ENV,
  },
);
deit.address = `127.0.0.1:${deitPort}`;
const kserve = startServer(
  'KServe',
  join(VENV, 'bin', 'python'),
  [
    join(import.meta.dirname, 'kserve_model.py'),
    `--model_file=${modelFile}`,
    `--model_name=${MODEL}`,
    `--grpc_port=${kservePort}`,
    `--http_port=${kserveHttpPort}`,
    // Lines per request otherwise (latency, and the gRPC interceptor's method at INFO); deit-serve
    // runs at log level warn.
    '--enable_latency_logging=false',
  ],
  { ...process.env, PYTHONUNBUFFERED: '1', KSERVE_LOGLEVEL: 'WARNING' },
);
kserve.address = `127.0.0.1:${kservePort}`;
const servers = [deit, kserve];

log(`starting deit-serve on ${deit.address} and KServe on ${kserve.address}`);
await Promise.all(servers.map((s) => waitReady(s, s.address, 180_000)));
servers.forEach((s) => s.sample());
log(
  `both ready; idle RSS deit-serve ${deit.peakRssMb.toFixed(0)} MiB, KServe ${kserve.peakRssMb.toFixed(0)} MiB`,
);
const agreement = await compareAnswers();
log(
  `same answers: outputs ${agreement.names.join(', ')}; largest difference ${agreement.maxAbsDiff.toExponential(1)}`,
);
const sampler = setInterval(() => servers.forEach((s) => s.sample()), 50);

/**
 * One ModelInfer of the benchmark's request to each server: both must answer the same outputs with
 * the same values (the same model doing the same work), or the comparison means nothing.
 */
async function compareAnswers() {
  const request = {
    model_name: MODEL,
    inputs: [{ name: inputName, datatype: 'FP32', shape: [1, 3, 224, 224] }],
    raw_input_contents: [readFileSync(tensorFile)],
  };
  const answers = await Promise.all(
    servers.map(async (server) => {
      const client = new oip.GRPCInferenceService(server.address, grpc.credentials.createInsecure(), {
        'grpc.max_send_message_length': 16 << 20,
      });
      try {
        const res = await new Promise((resolve, reject) =>
          client.ModelInfer(request, (err, r) =>
            err ? reject(new Error(`${server.label}: ${err.message}`)) : resolve(r),
          ),
        );
        return new Map(
          res.outputs.map((o, i) => {
            const raw = res.raw_output_contents[i];
            return [
              o.name,
              new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)),
            ];
          }),
        );
      } finally {
        client.close();
      }
    }),
  );
  const [ours, theirs] = answers;
  const names = [...ours.keys()].sort();
  if (names.join() !== [...theirs.keys()].sort().join()) {
    throw new Error(
      `the servers answer different outputs: ${names.join()} vs ${[...theirs.keys()].sort().join()}`,
    );
  }
  let maxAbsDiff = 0;
  for (const name of names) {
    const a = ours.get(name);
    const b = theirs.get(name);
    if (a.length !== b.length) throw new Error(`output ${name}: ${a.length} vs ${b.length} values`);
    for (let i = 0; i < a.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i] - b[i]));
  }
  if (!(maxAbsDiff <= 1e-4)) throw new Error(`the servers' answers differ by up to ${maxAbsDiff}`);
  return { names, maxAbsDiff };
}

// ---------------------------------------------------------------------------------------------
// k6 runs.

let runIndex = 0;
function k6(server, concurrency, seconds) {
  const summary = join(workDir, `k6-${runIndex++}.json`);
  return new Promise((resolve, reject) => {
    const child = spawn(
      K6,
      [
        'run',
        '--quiet',
        '--no-color',
        '--no-usage-report',
        '--vus',
        String(concurrency),
        '--duration',
        `${seconds}s`,
        `--summary-trend-stats=${TREND_STATS.join(',')}`,
        '-e',
        `ADDRESS=${server.address}`,
        '-e',
        `MODEL=${MODEL}`,
        '-e',
        `INPUT=${inputName}`,
        '-e',
        `TENSOR=${tensorFile}`,
        '-e',
        `PROTO_DIR=${PROTO_DIR}`,
        '-e',
        `SUMMARY=${summary}`,
        join(import.meta.dirname, 'oip-infer.k6.js'),
      ],
      { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0)
        return reject(new Error(`k6 against ${server.label} at c=${concurrency} exited ${code}`));
      try {
        resolve(parseK6Summary(JSON.parse(readFileSync(summary, 'utf8'))));
      } catch (error) {
        reject(error);
      }
    });
  });
}

// Warm-up: connections, and the batch shapes each server will see.
for (const server of servers) {
  await k6(server, Math.max(...CONCURRENCIES), WARM_SECONDS);
  await k6(server, 1, Math.min(WARM_SECONDS, 2));
}
const runs = new Map(servers.map((s) => [s, new Map(CONCURRENCIES.map((c) => [c, []]))]));
for (const c of CONCURRENCIES) {
  for (let rep = 0; rep < REPS; rep++) {
    for (const server of servers) {
      if (server.exited) throw new Error(`${server.label} exited during the benchmark`);
      const cpuBefore = server.cpuMs();
      const threadsBefore = server.threadsCpuMs();
      const r = await k6(server, c, SECONDS);
      r.cpuMsPerCall = (server.cpuMs() - cpuBefore) / r.ok;
      const threads = [...server.threadsCpuMs()]
        .map(([tid, ms]) => ({
          main: tid === server.child.pid,
          perCall: (ms - (threadsBefore.get(tid) ?? 0)) / r.ok,
        }))
        .filter((t) => t.perCall >= 0.05)
        .sort((a, b) => b.perCall - a.perCall);
      runs.get(server).get(c).push(r);
      log(
        `${server.label} c=${c} rep ${rep + 1}: ${r.throughput.toFixed(1)} img/s, p50 ${r.p50.toFixed(1)} ms, ` +
          `p99 ${r.p99.toFixed(1)} ms, server CPU ${r.cpuMsPerCall.toFixed(1)} ms/call ` +
          `(per thread: ${threads.map((t) => `${t.perCall.toFixed(1)}${t.main ? ' main' : ''}`).join(', ')}), failed ${r.failed}`,
      );
    }
  }
}
clearInterval(sampler);
servers.forEach((s) => s.sample());
for (const s of servers) s.child.kill('SIGTERM');
const exits = await Promise.all(
  servers.map((s) => Promise.race([s.exit, new Promise((r) => setTimeout(() => r(undefined), 15_000))])),
);

// ---------------------------------------------------------------------------------------------
// Report.

const results = servers.map((s) => ({
  label:
    s === deit
      ? args['deit-env'].length > 0
        ? `deit-serve (${args['deit-env'].join(' ')})`
        : 'deit-serve (service defaults)'
      : 'KServe 0.21.0 (Python, v2 gRPC)',
  byConcurrency: new Map([...runs.get(s)].map(([c, rs]) => [c, combineRepetitions(rs)])),
  peakRssMb: s.peakRssMb,
}));
const checks = judge(results[0], results[1]);
const failed = results.reduce(
  (sum, r) => sum + [...r.byConcurrency.values()].reduce((a, x) => a + x.failed, 0),
  0,
);
const loadAtEnd = loadavg();

console.log(`
deit-serve vs KServe: ${MODEL} (deit_tiny_distilled_patch16_224, random weights), ModelInfer (v2 gRPC), FP32 [1,3,224,224] raw
machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; ${new Date().toISOString()}
load average (1/5/15 min): ${loadAtStart.map((v) => v.toFixed(2)).join(' ')} at start, ${loadAtEnd.map((v) => v.toFixed(2)).join(' ')} at end
client: k6 (${K6}), closed loop, one connection per virtual user; ${SECONDS} s per run, ${REPS} interleaved repetitions per concurrency, medians shown; p50/p99 client side;
deit-serve started with NODE_OPTIONS="${deit.env.NODE_OPTIONS ?? ''}" GLIBC_TUNABLES="${deit.env.GLIBC_TUNABLES ?? ''}"
CPU ms/call: the server process's user + system time (all threads) over a run / its successful calls

${resultTable(results, CONCURRENCIES)}
both answer ${agreement.names.join(', ')}; largest difference between their values ${agreement.maxAbsDiff.toExponential(1)}

deit-serve / KServe:
${checks.map((c) => `  ${c.name.padEnd(18)} ${c.ratio.toFixed(3)}  (target ${c.target})  ${c.pass ? 'PASS' : 'FAIL'}`).join('\n')}
failed calls: ${failed}; server exits: ${servers.map((s, i) => `${s.label} ${exits[i] ? (exits[i].signal ?? `code ${exits[i].code}`) : 'killed'}`).join(', ')}; total ${((performance.now() - started) / 1000).toFixed(0)} s
`);
if (failed > 0) process.exitCode = 1;
