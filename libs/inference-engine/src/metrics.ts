import { createServer, type Server } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { status } from '@grpc/grpc-js';
import type { DecodeAdmission } from '@deit-serve/preprocess';
import type { Fallback } from './fallback';

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];

/** The inference service's Prometheus metrics (names follow Triton's where one exists). */
export class InferenceMetrics {
  readonly registry = new Registry();
  /** The fallbacks last reported to {@link setFallbacks}. */
  private fallbackKeys = new Set<string>();

  readonly requests = new Counter({
    name: 'deit_requests_total',
    help: 'Requests by gRPC method and status code',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  });
  readonly queueSeconds = new Histogram({
    name: 'deit_request_queue_seconds',
    help: 'Time a request waited in the dynamic batcher',
    labelNames: ['model', 'version'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly computeSeconds = new Histogram({
    name: 'deit_request_compute_seconds',
    help: 'Forward pass time of the batch a request was part of',
    labelNames: ['model', 'version'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly preprocessSeconds = new Histogram({
    name: 'deit_request_preprocess_seconds',
    help: 'Decoding and preprocessing time of a request',
    labelNames: ['model', 'version'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly requestSeconds = new Histogram({
    name: 'deit_request_duration_seconds',
    help: 'Arrival to response, server side',
    labelNames: ['method'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'deit_batch_size',
    help: 'Executed batch sizes (inferences / executions)',
    labelNames: ['model', 'version'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [this.registry],
  });
  readonly headKl = new Histogram({
    name: 'deit_head_disagreement_kl',
    help: 'KL(p_cls || p_dist) per request: a drift / out-of-distribution signal',
    labelNames: ['model', 'version'] as const,
    buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [this.registry],
  });
  readonly headTop1Mismatch = new Counter({
    name: 'deit_head_top1_mismatch_total',
    help: 'Requests whose CLS and DIST heads chose different classes',
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
  });
  readonly loadedVersions = new Gauge({
    name: 'deit_model_loaded',
    help: '1 for each model version loaded and serving',
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
  });
  readonly loads = new Counter({
    name: 'deit_model_loads_total',
    help: 'Model version loads by outcome (ok, failed)',
    labelNames: ['model', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly fallback = new Gauge({
    name: 'deit_model_fallback',
    help: '1 while a route serves serving_version because wanted_version, which its alias names, cannot be served (unknown: the alias cannot be resolved)',
    labelNames: ['model', 'alias', 'wanted_version', 'serving_version'] as const,
    registers: [this.registry],
  });
  readonly fallbacks = new Counter({
    name: 'deit_model_fallbacks_total',
    help: 'Times a route fell back to another version than its alias names',
    labelNames: ['model', 'alias'] as const,
    registers: [this.registry],
  });
  readonly queueLength = new Gauge({
    name: 'deit_pending_requests',
    help: 'Requests submitted to dynamic batchers and not yet answered (queued or computing)',
    registers: [this.registry],
  });

  private decoding?: DecodeAdmission;
  readonly decodes = new Gauge({
    name: 'deit_image_decodes',
    help: 'Image decodes running (state=active) or waiting (state=queued) per lane: small images have a lane of their own',
    labelNames: ['lane', 'state'] as const,
    registers: [this.registry],
    collect: () => {
      const decoding = this.decoding;
      if (decoding === undefined) return;
      for (const lane of ['small', 'large'] as const) {
        this.decodes.set({ lane, state: 'active' }, decoding.active(lane));
        this.decodes.set({ lane, state: 'queued' }, decoding.queued(lane));
      }
    },
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** Counts one request in `deit_requests_total` under its proto method name and status code's name. */
  countRequest(method: string, code: number): void {
    this.requests.inc({ method, code: grpcCodeName(code) });
  }

  /** Counts a call refused below its handler; `path` is `/package.Service/Method`. */
  countRefusal(path: string, code: number): void {
    this.countRequest(path.slice(path.lastIndexOf('/') + 1), code);
  }

  /** Reports `decoding`'s lanes in `deit_image_decodes` at each scrape. */
  observeDecoding(decoding: DecodeAdmission): void {
    this.decoding = decoding;
  }

  /** Sets the fallback gauge to exactly `current`, counting the fallbacks that are new. */
  setFallbacks(current: readonly Fallback[]): void {
    const key = (f: Fallback) => [f.model, f.alias, f.wantedVersion, f.servingVersion].join('\0');
    const before = this.fallbackKeys;
    this.fallbackKeys = new Set(current.map(key));
    this.fallback.reset();
    for (const f of current) {
      const labels = { model: f.model, alias: f.alias };
      this.fallback.set(
        {
          ...labels,
          wanted_version: f.wantedVersion === null ? 'unknown' : String(f.wantedVersion),
          serving_version: String(f.servingVersion),
        },
        1,
      );
      if (!before.has(key(f))) this.fallbacks.inc(labels);
    }
  }

  /**
   * Serves `GET /metrics` (Prometheus text format) and, when `health` is given, `GET /health` (its JSON:
   * the detail gRPC health cannot carry, such as fallbacks); resolves once listening.
   */
  async serve(host: string, port: number, health?: () => unknown): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/health' && health !== undefined) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(health()) + '\n');
        return;
      }
      if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
        res.writeHead(404).end('not found\n');
        return;
      }
      this.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text))
        .catch((error: unknown) => res.writeHead(500).end(String(error)));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, resolve);
    });
    return server;
  }
}

function grpcCodeName(code: number): string {
  return (status as unknown as Record<number, string | undefined>)[code] ?? String(code);
}
