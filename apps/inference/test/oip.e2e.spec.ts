/**
 * The Open Inference Protocol (KServe v2 / Triton's `inference.GRPCInferenceService`) on the inference
 * port, driven by an independent client: Triton's own Python `tritonclient[grpc]` (pinned in
 * tools/python-requirements.txt, installed into reports/.venv-test by tools/scripts/test-setup.sh).
 * Its answers on the committed default model must equal Classify's on the same input.
 */
import 'reflect-metadata';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { inferenceConfigSpec, loadConfig } from '@deit-serve/config';
import { inferenceV1Client } from '@deit-serve/proto';
import { startTestService, type TestService } from '@deit-serve/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../src/app.module';
import { classify, newClient, type Client } from './support';

const root = join(__dirname, '..', '..', '..');
const MODEL = 'fmnist-deit';
const TOLERANCE = 1e-5;
const execFileAsync = promisify(execFile);
const { Head } = inferenceV1Client;

const venvPython = join(root, 'reports', '.venv-test', 'bin', 'python');
const python = process.env['PYTHON'] ?? (existsSync(venvPython) ? venvPython : 'python3');
const probe = spawnSync(python, ['-c', 'import tritonclient.grpc, numpy'], { encoding: 'utf8' });
const missing =
  probe.error !== undefined || probe.status !== 0
    ? `skipped: ${python} without tritonclient[grpc] (run tools/scripts/test-setup.sh)`
    : undefined;

/** perf_analyzer as bench/oip/perf-analyzer.sh installs it (tools/scripts/test-setup.sh runs that). */
const perfAnalyzer =
  process.env['DEIT_PERF_ANALYZER'] ??
  join(homedir(), '.cache', 'deit-serve', 'perf-analyzer-2.47.0', 'perf_analyzer');
const perfAnalyzerMissing = existsSync(perfAnalyzer)
  ? undefined
  : `skipped: no perf_analyzer at ${perfAnalyzer} (bash bench/oip/perf-analyzer.sh)`;

interface Infer {
  model_name: string;
  model_version: string;
  outputs: Record<string, number[][] | string[][]>;
}
interface Failure {
  status: string;
  message: string;
}
interface Answers {
  live: boolean;
  ready: boolean;
  model_ready: boolean;
  unknown_model_ready: boolean;
  server: { name: string; extensions: string[] };
  metadata: {
    name: string;
    versions: string[];
    platform: string;
    inputs: { name: string; datatype: string; shape: string[] }[];
    outputs: { name: string; datatype: string; shape: string[] }[];
  };
  config: { max_batch_size: number; dynamic_batching: { max_queue_delay_microseconds?: string } };
  infer: Record<string, Infer> & { typed_contents: Record<string, number[]> };
  stream: { error: string | null; ok: boolean }[];
  statistics: {
    model_stats: { name: string; version: string; inference_count: string; execution_count: string }[];
  };
  index: { models: { name: string; version: string; state: string }[] };
  errors: Record<string, Failure | null>;
}

/** Every head's logits by class index, from Classify with top_k = all classes. */
async function classifyLogits(
  client: Client,
  input: { image: Buffer } | { tensor: inferenceV1Client.Tensor },
  head: inferenceV1Client.Head,
  classes: number,
): Promise<{ logits: number[]; probabilities: number[]; version: number }> {
  const response = await classify(client, { model: MODEL, ...input, head, topK: classes });
  const logits = new Array<number>(classes).fill(NaN);
  const probabilities = new Array<number>(classes).fill(NaN);
  for (const p of response.predictions) {
    logits[p.index] = p.logit;
    probabilities[p.index] = p.probability;
  }
  return { logits, probabilities, version: response.model?.version ?? 0 };
}

function maxDifference(a: readonly number[], b: readonly number[]): number {
  expect(a).toHaveLength(b.length);
  return Math.max(...a.map((v, i) => Math.abs(v - (b[i] ?? NaN))));
}

describe.skipIf(missing !== undefined)(
  `Open Inference Protocol with tritonclient[grpc]${missing ? ` — ${missing}` : ''}`,
  () => {
    let service: TestService;
    let client: Client;
    let dir: string;
    let answers: Answers;
    let image: Buffer;
    let tensor: inferenceV1Client.Tensor;

    beforeAll(async () => {
      service = await startTestService(
        (port) =>
          AppModule.register(
            loadConfig(inferenceConfigSpec, {
              DEIT_GRPC_HOST: '127.0.0.1',
              DEIT_GRPC_PORT: String(port),
              DEIT_METRICS_PORT: '0',
              DEIT_REGISTRY_DIR: join(root, 'registry'),
              DEIT_DEFAULT_MODEL: MODEL,
              DEIT_REGISTRY_WATCH: 'poll',
              DEIT_REGISTRY_POLL_MS: '1000',
              DEIT_INTRA_OP_THREADS: '1',
            }),
          ),
        { protoFiles: ['inference', 'oip'], packages: ['deit.inference.v1', 'inference'] },
      );
      client = newClient(service.address);
      const examples = join(root, 'examples', 'fashion-mnist');
      image = readFileSync(join(examples, readdirSync(examples).find((f) => f.endsWith('.png')) ?? ''));
      // A deterministic preprocessed input of the model's size (3×28×28), not an image's.
      const values = Float32Array.from({ length: 3 * 28 * 28 }, (_, i) => Math.sin(i * 0.37) * 1.5);
      tensor = { shape: [1, 3, 28, 28], data: new Uint8Array(values.buffer) };
      // The default model is loaded when the service is SERVING; Classify first, as a client would.
      await classify(client, { model: MODEL, tensor });
      dir = mkdtempSync(join(tmpdir(), 'oip-e2e-'));
      writeFileSync(join(dir, 'image.png'), image);
      writeFileSync(join(dir, 'tensor.f32'), Buffer.from(values.buffer));
      // Asynchronously: the server answering it runs in this process.
      await execFileAsync(
        python,
        [
          join(__dirname, 'oip_client.py'),
          service.address,
          MODEL,
          join(dir, 'image.png'),
          join(dir, 'tensor.f32'),
          join(dir, 'answers.json'),
        ],
        { encoding: 'utf8', timeout: 120_000 },
      ).catch((error: Error & { stderr?: string }) => {
        throw new Error(`oip_client.py failed: ${error.message}\n${error.stderr ?? ''}`);
      });
      answers = JSON.parse(readFileSync(join(dir, 'answers.json'), 'utf8')) as Answers;
    }, 180_000);

    afterAll(async () => {
      client?.close();
      await service?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('reports the server live and ready, the default model ready and an unknown one not', () => {
      expect(answers.live).toBe(true);
      expect(answers.ready).toBe(true);
      expect(answers.model_ready).toBe(true);
      expect(answers.unknown_model_ready).toBe(false);
      expect(answers.server.name).toBe('deit-serve');
      expect(answers.server.extensions).toEqual(expect.arrayContaining(['classification', 'statistics']));
    });

    it("describes the model's real inputs and outputs, and the batcher's settings", () => {
      const m = answers.metadata;
      expect(m.name).toBe(MODEL);
      expect(m.platform).toBe('onnxruntime_onnx');
      expect(m.inputs).toEqual([
        { name: 'pixel_values', datatype: 'FP32', shape: ['-1', '3', '28', '28'] },
        { name: 'image', datatype: 'BYTES', shape: ['-1', '1'] },
      ]);
      expect(m.outputs).toEqual([
        { name: 'cls_logits', datatype: 'FP32', shape: ['-1', '10'] },
        { name: 'dist_logits', datatype: 'FP32', shape: ['-1', '10'] },
        { name: 'probabilities', datatype: 'FP32', shape: ['-1', '10'] },
      ]);
      // The defaults of DEIT_MAX_BATCH_SIZE and DEIT_MAX_QUEUE_DELAY_MS.
      const defaults = loadConfig(inferenceConfigSpec, { DEIT_REGISTRY_DIR: '/x' });
      expect(answers.config.max_batch_size).toBe(defaults.maxBatchSize);
      // protobuf JSON leaves a 0 out.
      expect(Number(answers.config.dynamic_batching.max_queue_delay_microseconds ?? 0)).toBe(
        defaults.maxQueueDelayMs * 1000,
      );
    });

    it("gives Classify's logits (≤ 1e-5) for a float tensor, raw and typed, and for image bytes", async () => {
      const cls = await classifyLogits(client, { tensor }, Head.HEAD_CLS, 10);
      const dist = await classifyLogits(client, { tensor }, Head.HEAD_DIST, 10);
      const avg = await classifyLogits(client, { tensor }, Head.HEAD_AVERAGE, 10);
      const raw = answers.infer['tensor'];
      expect(raw?.model_name).toBe(MODEL);
      expect(raw?.model_version).toBe(String(cls.version));
      const out = raw?.outputs as Record<string, number[][]>;
      expect(maxDifference(out['cls_logits']?.[0] ?? [], cls.logits)).toBeLessThanOrEqual(TOLERANCE);
      expect(maxDifference(out['dist_logits']?.[0] ?? [], dist.logits)).toBeLessThanOrEqual(TOLERANCE);
      // No head parameter: the average, as Classify's default.
      expect(maxDifference(out['probabilities']?.[0] ?? [], avg.probabilities)).toBeLessThanOrEqual(
        TOLERANCE,
      );
      const typed = answers.infer.typed_contents;
      expect(maxDifference(typed['cls_logits'] ?? [], cls.logits)).toBeLessThanOrEqual(TOLERANCE);
      expect(maxDifference(typed['dist_logits'] ?? [], dist.logits)).toBeLessThanOrEqual(TOLERANCE);

      const fromImage = await classifyLogits(client, { image }, Head.HEAD_CLS, 10);
      const imageOut = answers.infer['image']?.outputs as Record<string, number[][]>;
      expect(maxDifference(imageOut['cls_logits']?.[0] ?? [], fromImage.logits)).toBeLessThanOrEqual(
        TOLERANCE,
      );
      // A batch of two is two items through the same batcher: the same answer twice.
      for (const name of ['batch_of_2_images', 'tensor_batch_of_2']) {
        const batch = answers.infer[name]?.outputs['cls_logits'] as number[][];
        expect(batch).toHaveLength(2);
        const expected = name.startsWith('tensor') ? cls.logits : fromImage.logits;
        for (const row of batch) expect(maxDifference(row, expected)).toBeLessThanOrEqual(TOLERANCE);
      }
    });

    it("answers each head's probabilities for the head parameter", async () => {
      for (const [name, head] of [
        ['head_cls', Head.HEAD_CLS],
        ['head_dist', Head.HEAD_DIST],
        ['head_avg', Head.HEAD_AVERAGE],
      ] as const) {
        const expected = await classifyLogits(client, { tensor }, head, 10);
        const probabilities = (answers.infer[name]?.outputs['probabilities'] as number[][])[0] ?? [];
        expect(maxDifference(probabilities, expected.probabilities), name).toBeLessThanOrEqual(TOLERANCE);
      }
    });

    it('answers the classification extension with "score:index:label" top-k strings', async () => {
      const expected = await classify(client, { model: MODEL, image, topK: 3 });
      const strings = answers.infer['classification']?.outputs['probabilities'] as string[][];
      expect(strings).toHaveLength(1);
      expect(strings[0]).toHaveLength(3);
      strings[0]?.forEach((s, i) => {
        const [score, index, ...label] = s.split(':');
        const p = expected.predictions[i];
        expect(Number(index)).toBe(p?.index);
        expect(label.join(':')).toBe(p?.label);
        expect(Math.abs(Number(score) - (p?.probability ?? NaN))).toBeLessThanOrEqual(5e-7);
      });
    });

    it('streams answers per request: good ones answered, a bad one with its error', () => {
      expect(answers.stream).toHaveLength(3);
      expect(answers.stream.filter((s) => s.ok)).toHaveLength(2);
      expect(answers.stream.find((s) => !s.ok)?.error).toContain(
        "Request for unknown model: 'no-such-model' is not found",
      );
    });

    it('counts inferences and executions per model version, and indexes the registry', () => {
      const stats = answers.statistics.model_stats.filter((s) => s.name === MODEL);
      expect(stats.length).toBeGreaterThan(0);
      expect(Number(stats[0]?.inference_count)).toBeGreaterThan(10);
      expect(Number(stats[0]?.execution_count)).toBeGreaterThan(0);
      const served = answers.index.models.filter((m) => m.name === MODEL && m.state === 'READY');
      expect(served.map((m) => m.version)).toEqual([stats[0]?.version]);
    });

    it.skipIf(perfAnalyzerMissing !== undefined)(
      `perf_analyzer drives ModelInfer with its usual flags and no errors${perfAnalyzerMissing ? ` — ${perfAnalyzerMissing}` : ''}`,
      { timeout: 60_000 },
      async () => {
        const content = Array.from(new Float32Array(tensor.data.slice().buffer), (v) =>
          Number.isInteger(v) ? v.toFixed(1) : String(v),
        );
        const input = join(dir, 'perf-input.json');
        // Only the FP32 input: both of the model's inputs are optional, and a request takes one.
        writeFileSync(
          input,
          `{"data":[{"pixel_values":{"content":[${content.join(',')}],"shape":[3,28,28]}}]}`,
        );
        const { stdout } = await execFileAsync(
          perfAnalyzer,
          [
            '-m',
            MODEL,
            '-i',
            'grpc',
            '-u',
            service.address,
            '--concurrency-range',
            '2',
            '--input-data',
            input,
            '--measurement-mode',
            'count_windows',
            '--measurement-request-count',
            '40',
            '--stability-percentage',
            '100',
            '--max-trials',
            '3',
          ],
          { encoding: 'utf8', timeout: 50_000 },
        );
        expect(stdout).not.toContain('had error');
        expect(Number(/Request count: (\d+)/.exec(stdout)?.[1])).toBeGreaterThanOrEqual(40);
        // Its server-side section comes from ModelStatistics.
        expect(Number(/Successful request count: (\d+)/.exec(stdout)?.[1])).toBeGreaterThanOrEqual(40);
      },
    );

    it("gives bad requests Triton's status codes and messages", () => {
      const e = answers.errors;
      const id = '[request id: <id_unknown>] ';
      expect(e['unknown_model']).toEqual({
        status: 'StatusCode.NOT_FOUND',
        message: "Request for unknown model: 'no-such-model' is not found",
      });
      expect(e['unknown_version']).toEqual({
        status: 'StatusCode.NOT_FOUND',
        message: `Request for unknown model: '${MODEL}' version 999 is not found`,
      });
      expect(e['unknown_model_metadata']?.status).toBe('StatusCode.NOT_FOUND');
      expect(e['wrong_shape']).toEqual({
        status: 'StatusCode.INVALID_ARGUMENT',
        message: `${id}unexpected shape for input 'pixel_values' for model '${MODEL}'. Expected [-1,3,28,28], got [1,2352]`,
      });
      expect(e['wrong_datatype']).toEqual({
        status: 'StatusCode.INVALID_ARGUMENT',
        message: `${id}inference input 'pixel_values' data-type is 'INT32', but model '${MODEL}' expects 'FP32'`,
      });
      expect(e['byte_size']).toEqual({
        status: 'StatusCode.INVALID_ARGUMENT',
        message: `${id}input byte size mismatch for input 'pixel_values' for model '${MODEL}'. Expected 9408, got 9404`,
      });
      expect(e['unknown_input']).toEqual({
        status: 'StatusCode.INVALID_ARGUMENT',
        message: `${id}unexpected inference input 'nope' for model '${MODEL}'`,
      });
      expect(e['unknown_output']).toEqual({
        status: 'StatusCode.INVALID_ARGUMENT',
        message: `${id}unexpected inference output 'nope' for model '${MODEL}'`,
      });
      expect(e['unknown_head']?.status).toBe('StatusCode.INVALID_ARGUMENT');
      expect(e['unknown_head']?.message).toContain(
        "parameter 'head' must be a string, one of 'cls', 'dist', 'avg'",
      );
      expect(e['unload']?.status).toBe('StatusCode.UNIMPLEMENTED');
      expect(e['shared_memory']?.status).toBe('StatusCode.UNIMPLEMENTED');
    });
  },
);
