import { z } from 'zod';
import { aliasList, boolean, dnsLabel, field, intInRange, nonEmpty, oneOf, pathList, port } from './define';

/**
 * Where the model registry lives when DEIT_REGISTRY_DIR (or a tool's `--registry`) does not say:
 * relative to the working directory.
 */
export const DEFAULT_REGISTRY_DIR = 'registry';

/**
 * Every variable and default of both services, in one place. The README's configuration table is
 * checked against these (tools/src/readme.spec.ts).
 */
const common = {
  grpcHost: field('DEIT_GRPC_HOST', nonEmpty, '0.0.0.0', 'address the gRPC server binds'),
  registryDir: field('DEIT_REGISTRY_DIR', nonEmpty, DEFAULT_REGISTRY_DIR, 'model registry folder'),
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
  maxConcurrentStreams: field(
    'DEIT_GRPC_MAX_CONCURRENT_STREAMS',
    intInRange(1, 1_000_000),
    100,
    'grpc.max_concurrent_streams: calls open at once on one connection; more wait in the client',
  ),
  flowControlWindow: field(
    'DEIT_GRPC_FLOW_CONTROL_WINDOW',
    intInRange(65_535, 2 ** 31 - 1),
    4 * 1024 * 1024,
    'HTTP/2 receive window per stream and per connection, in bytes (65535: the HTTP/2 default)',
  ),
  // Security (README "Security"): each is off when unset, the local-development default.
  authTokensFile: field(
    'DEIT_AUTH_TOKENS_FILE',
    z.string(),
    '',
    'bearer tokens (JSON: name, sha256, roles) every RPC but grpc.health.v1 requires; unset: no authentication',
  ),
  tlsCertFile: field(
    'DEIT_TLS_CERT_FILE',
    z.string(),
    '',
    'PEM server certificate (chain); with DEIT_TLS_KEY_FILE, gRPC is served over TLS; unset: plain text',
  ),
  tlsKeyFile: field('DEIT_TLS_KEY_FILE', z.string(), '', 'PEM private key of DEIT_TLS_CERT_FILE'),
  tlsClientCaFile: field(
    'DEIT_TLS_CLIENT_CA_FILE',
    z.string(),
    '',
    'PEM CA bundle: clients must present a certificate it signed (mutual TLS)',
  ),
  healthPort: field(
    'DEIT_HEALTH_PORT',
    intInRange(0, 65535),
    0,
    'plain-text port serving only grpc.health.v1, for probes that cannot speak TLS (0: off)',
  ),
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
  onnxThread: field(
    'DEIT_ONNX_THREAD',
    oneOf(['worker', 'main'] as const),
    'worker',
    'where onnxruntime computes: one worker thread for the process (the event loop keeps receiving requests during a batch) or the main thread, which onnxruntime-node blocks for each run',
  ),
  v8HeapGrowingPercent: field(
    'DEIT_V8_HEAP_GROWING_PERCENT',
    intInRange(0, 1000),
    100,
    "V8's old-generation growth between full collections, in percent (0: V8's own heuristics, which collect every few requests under load here)",
  ),
  maxBatchSize: field(
    'DEIT_MAX_BATCH_SIZE',
    intInRange(1, 1024),
    8,
    'dynamic batching: largest batch (8 suits CPUs, where onnxruntime gains nothing past it and memory grows with it; GPUs want more)',
  ),
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
  maxDecodingPixels: field(
    'DEIT_MAX_DECODING_PIXELS',
    intInRange(1, 1 << 30),
    16_777_216,
    'pixels being decoded at once across all requests (bounds decoder memory); further decodes wait',
  ),
  maxStreamInFlight: field(
    'DEIT_MAX_STREAM_IN_FLIGHT',
    intInRange(1, 100_000),
    64,
    'un-answered items one ClassifyStream call may have; more are answered RESOURCE_EXHAUSTED',
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
  maxJobWallMs: field(
    'DEIT_MAX_JOB_WALL_MS',
    intInRange(1000, 20 * 86_400_000),
    86_400_000,
    'a job running longer since it first started is stopped with a checkpoint and failed',
  ),
  dataRoots: field(
    'DEIT_TRAINER_DATA_ROOTS',
    pathList,
    ['/usr/share/datasets/fashion-mnist', 'var/trainer/data'],
    'folders (":"-separated) that every file a fine-tune names must resolve into, symlinks followed',
  ),
  maxDatasetImages: field(
    'DEIT_MAX_DATASET_IMAGES',
    intInRange(1, 1_000_000_000),
    100_000,
    'images one job may load (training and evaluation together)',
  ),
  maxDatasetBytes: field(
    'DEIT_MAX_DATASET_BYTES',
    intInRange(1, 2 ** 50),
    4 * 1024 ** 3,
    'bytes of dataset files one job may read, counted as stored and again decompressed',
  ),
  protectedAliases: field(
    'DEIT_PROTECTED_ALIASES',
    aliasList,
    ['production'],
    'aliases (","-separated) a fine-tune moves only for an admin, or when it beats the incumbent on the evaluation set the trainer itself reproduces',
  ),
  jobMaxRetries: field(
    'DEIT_JOB_MAX_RETRIES',
    intInRange(0, 100),
    3,
    'times a job whose worker was killed (SIGKILL, OOM) or hit a full disk goes back to the queue to resume from its checkpoint',
  ),
  trainingBackend: field(
    'DEIT_TRAINING_BACKEND',
    oneOf(['auto', 'tensorflow', 'wasm', 'cpu'] as const),
    'auto',
    'tfjs backend: auto picks tfjs-node(-gpu) when installed, else wasm',
  ),
  runner: field(
    'DEIT_TRAINER_RUNNER',
    oneOf(['process', 'kubernetes'] as const),
    'process',
    'where jobs run: worker processes of the trainer, or one Kubernetes Job each (job mode)',
  ),
  namespace: field(
    'DEIT_TRAINER_NAMESPACE',
    dnsLabel,
    'default',
    'job mode: namespace of the fine-tune Jobs',
  ),
  finetuneImage: field(
    'DEIT_FINETUNE_IMAGE',
    nonEmpty,
    'deit-serve/trainer:0.1.0',
    "job mode: image of the fine-tune Jobs (the trainer's own)",
  ),
  finetuneServiceAccount: field(
    'DEIT_FINETUNE_SERVICE_ACCOUNT',
    dnsLabel,
    'deit-finetune',
    'job mode: ServiceAccount of the Job pods (no permissions)',
  ),
  finetuneRegistryClaim: field(
    'DEIT_FINETUNE_REGISTRY_CLAIM',
    dnsLabel,
    'deit-registry',
    'job mode: the registry PersistentVolumeClaim the Job pods publish to',
  ),
  finetuneWorkClaim: field(
    'DEIT_FINETUNE_WORK_CLAIM',
    dnsLabel,
    'deit-finetune-work',
    'job mode: ReadWriteMany claim for checkpoints and job event files, mounted by the trainer at DEIT_TRAINER_WORK_DIR',
  ),
  finetuneGpus: field(
    'DEIT_FINETUNE_GPUS',
    intInRange(0, 64),
    0,
    'job mode: NVIDIA GPUs each fine-tune Job requests (nvidia.com/gpu, request = limit); 0: none',
  ),
};
