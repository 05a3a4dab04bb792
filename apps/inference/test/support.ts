/** Shared set-up of the inference end-to-end tests: the real app on ephemeral ports, generated clients. */
import 'reflect-metadata';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { inferenceConfigSpec, loadConfig } from '@deit-serve/config';
import { freePort } from '@deit-serve/grpc-server';
import { healthV1Client, inferenceV1Client, PROTO_PACKAGES } from '@deit-serve/proto';
import { healthCheck, startTestService, type TestService } from '@deit-serve/testing';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { AppModule } from '../src/app.module';

export type Client = inferenceV1Client.InferenceServiceClient;
export type ClassifyRequest = Partial<inferenceV1Client.ClassifyRequest>;

export interface Inference {
  service: TestService;
  client: Client;
  /** Set when the metrics endpoint was asked for. */
  metricsUrl?: string;
  close(): Promise<void>;
}

/**
 * Starts the inference app on a free port with `env` over test defaults: polling every 100 ms, one
 * onnxruntime thread (the CI box has two cores, shared by every test process), no metrics endpoint
 * unless `metrics` is set.
 */
export async function startInference(
  registryDir: string,
  env: Record<string, string> = {},
  options: { metrics?: boolean } = {},
): Promise<Inference> {
  const metricsPort = options.metrics ? await freePort() : 0;
  const service = await startTestService(
    (port) =>
      AppModule.register(
        loadConfig(inferenceConfigSpec, {
          DEIT_GRPC_HOST: '127.0.0.1',
          DEIT_GRPC_PORT: String(port),
          DEIT_METRICS_PORT: String(metricsPort),
          DEIT_REGISTRY_DIR: registryDir,
          DEIT_DEFAULT_MODEL: 'tiny',
          DEIT_REGISTRY_WATCH: 'poll',
          DEIT_REGISTRY_POLL_MS: '100',
          DEIT_INTRA_OP_THREADS: '1',
          ...env,
        }),
      ),
    { protoFiles: ['inference'], packages: [PROTO_PACKAGES.inference] },
  );
  const client = newClient(service.address);
  return {
    service,
    client,
    ...(metricsPort ? { metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` } : {}),
    close: async () => {
      client.close();
      await service.close();
    },
  };
}

export function newClient(address: string): Client {
  return new inferenceV1Client.InferenceServiceClient(address, credentials.createInsecure());
}

export function classify(
  client: Client,
  request: ClassifyRequest,
  options: { deadline?: Date | number } = {},
): Promise<inferenceV1Client.ClassifyResponse> {
  return new Promise((resolve, reject) =>
    client.classify(
      inferenceV1Client.ClassifyRequest.fromPartial(request),
      new Metadata(),
      options.deadline === undefined ? {} : { deadline: options.deadline },
      (err, res) => (err ? reject(err) : resolve(res)),
    ),
  );
}

/** The error of a call expected to fail. */
export function failure(
  client: Client,
  request: ClassifyRequest,
  options: { deadline?: Date | number } = {},
): Promise<ServiceError> {
  return classify(client, request, options).then(
    (res) => {
      throw new Error(`expected the call to fail; it answered with ${res.model?.name}:${res.model?.version}`);
    },
    (error: ServiceError) => error,
  );
}

export async function pngImage(
  width: number,
  height: number,
  rgb: [number, number, number],
): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
}

/** A tensor input for the tiny test model (3×16×16), every value `value`. */
export function tinyTensor(value: number): inferenceV1Client.Tensor {
  const data = new Float32Array(3 * 16 * 16).fill(value);
  return { shape: [1, 3, 16, 16], data: new Uint8Array(data.buffer) };
}

/**
 * A decompression bomb: a valid few-hundred-byte PNG whose header declares `width`×`height`. The
 * IHDR chunk is rewritten with a correct CRC, so only the declared size is wrong.
 */
export async function pngBomb(width: number, height: number): Promise<Buffer> {
  const png = Buffer.from(await pngImage(8, 8, [10, 20, 30]));
  // Signature (8) + IHDR length (4) + "IHDR" (4), then width and height.
  png.writeUInt32BE(width, 16);
  png.writeUInt32BE(height, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29); // CRC over type + 13 data bytes
  return png;
}

/** Fetches the Prometheus text exposition. */
export async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return res.text();
}

/** The value of one sample line (`name{labels} value`), or undefined when absent. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const workspaceRoot = join(__dirname, '..', '..', '..');

/** The inference service in a process of its own, started by `main.ts` from sources. */
export interface InferenceProcess {
  readonly address: string;
  readonly client: Client;
  readonly child: ChildProcess;
  /** Resident set size of the server process now (Linux /proc), in bytes. */
  rssBytes(): number;
  /** Its peak resident set size so far (VmHWM), in bytes. */
  peakRssBytes(): number;
  /** Its stderr so far (start-up errors, crashes). */
  stderr(): string;
  close(): Promise<void>;
}

/**
 * Starts `apps/inference/src/main.ts` as its own process, configured only through the environment as
 * in production (`env` over the same test defaults as {@link startInference}), and waits until it
 * reports SERVING. Its memory can then be measured apart from the test's, and a crash shows as an exit.
 */
export async function spawnInference(
  registryDir: string,
  env: Record<string, string> = {},
): Promise<InferenceProcess> {
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    [
      '-r',
      join(workspaceRoot, 'tools', 'test-support', 'register-ts.cjs'),
      join(workspaceRoot, 'apps', 'inference', 'src', 'main.ts'),
    ],
    {
      cwd: workspaceRoot,
      env: {
        ...process.env,
        DEIT_GRPC_HOST: '127.0.0.1',
        DEIT_GRPC_PORT: String(port),
        DEIT_METRICS_PORT: '0',
        DEIT_REGISTRY_DIR: registryDir,
        DEIT_DEFAULT_MODEL: 'tiny',
        DEIT_REGISTRY_WATCH: 'poll',
        DEIT_REGISTRY_POLL_MS: '1000',
        DEIT_INTRA_OP_THREADS: '1',
        DEIT_LOG_LEVEL: 'warn',
        ...env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) =>
      reject(new Error(`inference exited (${signal ?? `code ${code}`}) before serving:\n${stderr}`)),
    ),
  );
  exited.catch(() => undefined);
  const serving = (async () => {
    const until = Date.now() + 90_000;
    for (;;) {
      const answer = await healthCheck(address).catch((e: ServiceError) => e);
      if ('status' in answer && answer.status === healthV1Client.HealthCheckResponse_ServingStatus.SERVING)
        return;
      if (Date.now() > until) throw new Error(`${address} did not become SERVING:\n${stderr}`);
      await sleep(200);
    }
  })();
  try {
    await Promise.race([serving, exited]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  const client = newClient(address);
  return {
    address,
    client,
    child,
    rssBytes: () => procStatusBytes(child, 'VmRSS'),
    peakRssBytes: () => procStatusBytes(child, 'VmHWM'),
    stderr: () => stderr,
    close: async () => {
      client.close();
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

function procStatusBytes(child: ChildProcess, field: 'VmRSS' | 'VmHWM'): number {
  const line = readFileSync(`/proc/${child.pid}/status`, 'utf8').match(
    new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm'),
  );
  if (!line) throw new Error(`no ${field} for pid ${child.pid}`);
  return Number(line[1]) * 1024;
}

/** The status code of one Classify call: OK (0) or its error's code, and how long it took. */
export async function outcome(
  client: Client,
  request: ClassifyRequest,
  options: { deadline?: Date | number } = {},
): Promise<{ code: status; ms: number; details: string }> {
  const started = performance.now();
  try {
    await classify(client, request, options);
    return { code: status.OK, ms: performance.now() - started, details: '' };
  } catch (error) {
    const e = error as ServiceError;
    return { code: e.code, ms: performance.now() - started, details: e.details };
  }
}

/** Runs `tasks` with at most `concurrency` at once; results in order. */
export async function pool<T>(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

/** The value below which `p` of `values` lie (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))] ?? NaN;
}
