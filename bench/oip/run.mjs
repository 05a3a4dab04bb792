#!/usr/bin/env node
// The Open Inference Protocol beside Classify, measured in one run on one server:
//
//   npm run bench:oip [-- --concurrency 1,4 --seconds 5]
//
// Starts the inference service from sources on the committed registry (default model fmnist-deit),
// then for each concurrency drives
//   - Classify (deit.inference.v1) with a closed-loop @grpc/grpc-js client, and
//   - ModelInfer (inference.GRPCInferenceService) with Triton's perf_analyzer, its usual flags
//     (-m -i grpc -u --concurrency-range --input-data; count windows so a busy machine still settles),
// both with the same preprocessed tensor (3×28×28), so the only difference is the protocol. Prints
// throughput and p50/p99 latency for both and writes reports/bench-oip.json. perf_analyzer comes from
// bench/oip/perf-analyzer.sh; a run with any perf_analyzer error exits 1.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const root = join(import.meta.dirname, '..', '..');
const require = createRequire(import.meta.url);
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const { values: args } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '1,4' },
    seconds: { type: 'string', default: '5' },
    model: { type: 'string', default: 'fmnist-deit' },
  },
});
const CONCURRENCIES = args.concurrency.split(',').map(Number);
const SECONDS = Number(args.seconds);
const MODEL = args.model;
const SHAPE = [3, 28, 28];
const values = Float32Array.from(
  { length: SHAPE[0] * SHAPE[1] * SHAPE[2] },
  (_, i) => Math.sin(i * 0.37) * 1.5,
);

const perfAnalyzer = spawnSync('bash', [join(root, 'bench', 'oip', 'perf-analyzer.sh')], {
  encoding: 'utf8',
});
if (perfAnalyzer.status !== 0) {
  console.error(perfAnalyzer.stderr.trim());
  process.exit(1);
}
const PERF_ANALYZER = perfAnalyzer.stdout.trim();

const port = await freePort();
const address = `127.0.0.1:${port}`;
const server = spawn(
  process.execPath,
  [
    '-r',
    join(root, 'tools', 'test-support', 'register-ts.cjs'),
    join(root, 'apps', 'inference', 'src', 'main.ts'),
  ],
  {
    cwd: root,
    env: {
      ...process.env,
      DEIT_REGISTRY_DIR: join(root, 'registry'),
      DEIT_DEFAULT_MODEL: MODEL,
      DEIT_GRPC_HOST: '127.0.0.1',
      DEIT_GRPC_PORT: String(port),
      DEIT_METRICS_PORT: '0',
      DEIT_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  },
);
const work = mkdtempSync(join(tmpdir(), 'bench-oip-'));
let failed = false;
try {
  const definition = protoLoader.loadSync('deit/inference/v1/inference.proto', {
    includeDirs: [join(root, 'proto')],
    longs: Number,
  });
  const { InferenceService } = grpc.loadPackageDefinition(definition).deit.inference.v1;
  const client = new InferenceService(address, grpc.credentials.createInsecure());
  const request = {
    model: MODEL,
    tensor: { shape: [1, ...SHAPE], data: Buffer.from(values.buffer) },
    topK: 1,
  };
  const classify = () =>
    new Promise((resolve, reject) =>
      client.classify(request, (error, response) => (error ? reject(error) : resolve(response))),
    );
  await waitUntilServing(classify);
  const inputData = join(work, 'input.json');
  // perf_analyzer reads FP32 content only from JSON numbers written as floats (`0.0`, not `0`).
  const content = Array.from(values, (v) => (Number.isInteger(v) ? v.toFixed(1) : String(v))).join(',');
  writeFileSync(
    inputData,
    `{"data":[{"pixel_values":{"content":[${content}],"shape":[${SHAPE.join(',')}]}}]}`,
  );

  const rows = [];
  for (const concurrency of CONCURRENCIES) {
    rows.push({
      protocol: 'Classify (deit.inference.v1)',
      concurrency,
      ...(await closedLoop(classify, concurrency, SECONDS)),
    });
    const oip = runPerfAnalyzer(concurrency, inputData);
    failed ||= oip.errors > 0;
    rows.push({ protocol: 'ModelInfer (OIP, perf_analyzer)', concurrency, ...oip });
  }
  client.close();
  console.log(
    `\nload average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}; model ${MODEL}, tensor input ${SHAPE.join('×')}`,
  );
  console.table(
    rows.map((r) => ({
      protocol: r.protocol,
      concurrency: r.concurrency,
      'infer/s': r.throughput.toFixed(1),
      'p50 ms': r.p50Ms.toFixed(2),
      'p99 ms': r.p99Ms.toFixed(2),
      requests: r.requests,
      errors: r.errors,
    })),
  );
  mkdirSync(join(root, 'reports'), { recursive: true });
  writeFileSync(join(root, 'reports', 'bench-oip.json'), JSON.stringify({ model: MODEL, rows }, null, 2));
} catch (error) {
  console.error(error);
  failed = true;
} finally {
  server.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

/** Closed loop: `concurrency` callers, each sending its next call when the last is answered. */
async function closedLoop(call, concurrency, seconds) {
  const latencies = [];
  let errors = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        try {
          await call();
          latencies.push(performance.now() - t);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (p) => latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)] ?? NaN;
  return {
    throughput: latencies.length / elapsed,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    requests: latencies.length,
    errors,
  };
}

/** perf_analyzer at one concurrency; its CSV gives throughput and percentiles (µs). */
function runPerfAnalyzer(concurrency, inputData) {
  const csv = join(work, `pa-${concurrency}.csv`);
  const argv = [
    '-m',
    MODEL,
    '-i',
    'grpc',
    '-u',
    address,
    '--concurrency-range',
    String(concurrency),
    '--input-data',
    inputData,
    '--measurement-mode',
    'count_windows',
    '--measurement-request-count',
    String(Math.max(50, 20 * concurrency)),
    '--stability-percentage',
    '100',
    '--max-trials',
    '5',
    '-f',
    csv,
  ];
  let output;
  try {
    output = execFileSync(PERF_ANALYZER, argv, { encoding: 'utf8', timeout: 300_000 });
  } catch (error) {
    console.error(`perf_analyzer ${argv.join(' ')} failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    return { throughput: NaN, p50Ms: NaN, p99Ms: NaN, requests: 0, errors: 1 };
  }
  const [header, row] = readFileSync(csv, 'utf8').trim().split('\n');
  const cells = Object.fromEntries(header.split(',').map((h, i) => [h, Number(row.split(',')[i])]));
  const requests = Number(/Request count: (\d+)/.exec(output)?.[1] ?? NaN);
  const errors = (output.match(/had error/g) ?? []).length;
  return {
    throughput: cells['Inferences/Second'],
    p50Ms: cells['p50 latency'] / 1000,
    p99Ms: cells['p99 latency'] / 1000,
    requests,
    errors,
  };
}

async function waitUntilServing(call) {
  const until = Date.now() + 120_000;
  for (;;) {
    try {
      await call();
      return;
    } catch (error) {
      if (Date.now() > until) throw new Error(`the service did not answer: ${error.message}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
