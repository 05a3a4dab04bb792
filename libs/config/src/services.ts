import { boolean, field, intInRange, nonEmpty, oneOf, port } from './define';

/**
 * Every variable and default of both services, in one place. The README's configuration table is
 * checked against these (tools/src/readme.spec.ts).
 */
const common = {
  grpcHost: field('DEIT_GRPC_HOST', nonEmpty, '0.0.0.0', 'address the gRPC server binds'),
  registryDir: field('DEIT_REGISTRY_DIR', nonEmpty, 'registry', 'model registry folder'),
  registryWatch: field(
    'DEIT_REGISTRY_WATCH',
    oneOf(['auto', 'events', 'poll'] as const),
    'auto',
    'how registry changes are noticed: file-system events, polling, or events with a polling fallback',
  ),
  registryPollMs: field('DEIT_REGISTRY_POLL_MS', intInRange(100, 3_600_000), 2000, 'polling interval'),
  logLevel: field(
    'DEIT_LOG_LEVEL',
    oneOf(['error', 'warn', 'log', 'debug', 'verbose'] as const),
    'log',
    'log level',
  ),
  shutdownGraceMs: field(
    'DEIT_SHUTDOWN_GRACE_MS',
    intInRange(0, 600_000),
    10_000,
    'on SIGTERM, how long in-flight calls may finish before the server stops',
  ),
  maxMessageBytes: field(
    'DEIT_MAX_MESSAGE_BYTES',
    intInRange(1024, 1 << 30),
    16 * 1024 * 1024,
    'largest gRPC message accepted',
  ),
  reflection: field('DEIT_GRPC_REFLECTION', boolean, true, 'serve gRPC server reflection'),
};

export const inferenceConfigSpec = {
  ...common,
  grpcPort: field('DEIT_GRPC_PORT', port, 50051, 'gRPC port of the inference service'),
  metricsPort: field(
    'DEIT_METRICS_PORT',
    intInRange(0, 65535),
    9464,
    'Prometheus metrics (HTTP) port (0: off)',
  ),
  defaultModel: field(
    'DEIT_DEFAULT_MODEL',
    nonEmpty,
    'fmnist-deit',
    'model served when a request names none',
  ),
  executionProvider: field(
    'DEIT_EXECUTION_PROVIDER',
    oneOf(['cpu', 'cuda'] as const),
    'cpu',
    'onnxruntime execution provider; cuda falls back to cpu, with a warning, when unavailable',
  ),
  intraOpThreads: field(
    'DEIT_INTRA_OP_THREADS',
    intInRange(0, 256),
    0,
    'onnxruntime intra-op threads (0: one per core)',
  ),
  maxBatchSize: field('DEIT_MAX_BATCH_SIZE', intInRange(1, 1024), 16, 'dynamic batching: largest batch'),
  maxQueueDelayMs: field(
    'DEIT_MAX_QUEUE_DELAY_MS',
    intInRange(0, 10_000),
    0,
    'dynamic batching: longest wait for a batch to fill (0: a batch takes what queued while the previous one ran)',
  ),
  maxQueueSize: field(
    'DEIT_MAX_QUEUE_SIZE',
    intInRange(1, 1_000_000),
    512,
    'requests waiting per model beyond which new ones get RESOURCE_EXHAUSTED',
  ),
  maxDecodedPixels: field(
    'DEIT_MAX_DECODED_PIXELS',
    intInRange(1, 1 << 30),
    40_000_000,
    'largest width × height an encoded image may declare (decompression bombs)',
  ),
  maxConnectionAgeMs: field(
    'DEIT_GRPC_MAX_CONNECTION_AGE_MS',
    intInRange(0, 86_400_000),
    0,
    'grpc.max_connection_age_ms so clients re-resolve behind a load balancer (0: unlimited)',
  ),
};

export const trainerConfigSpec = {
  ...common,
  grpcPort: field('DEIT_TRAINER_GRPC_PORT', port, 50052, 'gRPC port of the trainer service'),
  jobsDb: field('DEIT_JOBS_DB', nonEmpty, 'var/trainer/jobs.sqlite', 'SQLite file of the durable job store'),
  workDir: field('DEIT_TRAINER_WORK_DIR', nonEmpty, 'var/trainer', 'checkpoints and job scratch space'),
  maxConcurrentJobs: field(
    'DEIT_MAX_CONCURRENT_JOBS',
    intInRange(1, 64),
    1,
    'jobs run at once; more wait queued',
  ),
  trainingBackend: field(
    'DEIT_TRAINING_BACKEND',
    oneOf(['auto', 'tensorflow', 'wasm', 'cpu'] as const),
    'auto',
    'tfjs backend: auto picks tfjs-node(-gpu) when installed, else wasm',
  ),
};
