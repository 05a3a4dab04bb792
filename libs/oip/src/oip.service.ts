import { status } from '@grpc/grpc-js';
import { DomainError, InvalidArgumentError, NotFoundError } from '@deit-serve/core';
import type {
  ClassificationService,
  ClassifyContext,
  InferenceMetrics,
  ModelHost,
} from '@deit-serve/inference-engine';
import { oipClient, type oip } from '@deit-serve/proto';
import { formatModelRef, type ModelRegistry, parseModelRef } from '@deit-serve/registry';
import { headOf, inferOutputs, parseInfer } from './infer';
import {
  BACKEND,
  inputsOf,
  outputsOf,
  PLATFORM,
  type Signature,
  signatureOf,
  type TensorSpec,
} from './signature';
import { versionStatistics } from './statistics';

/** The protocol extensions this server implements (ServerMetadata), named as Triton names them. */
export const EXTENSIONS = [
  'classification',
  'model_configuration',
  'model_repository',
  'statistics',
] as const;

export interface OipOptions {
  /** ServerMetadata's name and version. */
  server: { name: string; version: string };
  /** The dynamic batcher's settings, which ModelConfig reports. */
  batching: { maxBatchSize: number; maxQueueDelayMs: number; maxQueueSize: number };
  /** Whether the inference service is SERVING (its gRPC health status). */
  ready: () => boolean;
}

/** A gRPC status with no domain error kind (toGrpcError passes `{ code, message }` through). */
export class UnimplementedError extends Error {
  readonly code = status.UNIMPLEMENTED;
}

/**
 * The Open Inference Protocol (KServe v2 / Triton `inference.GRPCInferenceService`) over the same
 * engine as Classify: ModelInfer runs through {@link ClassificationService.forward} (one dynamic
 * batcher, limits, metrics and hot reload per model version). `model_name` is a registry name,
 * `model_version` a version number or empty for the `production` alias.
 */
export class OipService {
  constructor(
    private readonly classification: ClassificationService,
    private readonly host: ModelHost,
    private readonly registry: ModelRegistry,
    private readonly metrics: InferenceMetrics,
    private readonly options: OipOptions,
  ) {}

  serverLive(): oip.ServerLiveResponse {
    return { live: true };
  }

  serverReady(): oip.ServerReadyResponse {
    return { ready: this.options.ready() };
  }

  serverMetadata(): oip.ServerMetadataResponse {
    return { ...this.options.server, extensions: [...EXTENSIONS] };
  }

  /** Ready when the version the name (and version) resolves to is loaded; unknown models are not ready. */
  async modelReady(request: oip.ModelReadyRequest): Promise<oip.ModelReadyResponse> {
    let resolved;
    try {
      resolved = await this.registry.resolve(refOf(request.name, request.version));
    } catch {
      return { ready: false };
    }
    const ready = this.host
      .loadedModels()
      .some(({ model }) => model.name === resolved.model && model.version === resolved.version);
    return { ready: ready && this.options.ready() };
  }

  async modelMetadata(request: oip.ModelMetadataRequest): Promise<oip.ModelMetadataResponse> {
    const { info, signature } = await this.describe(request.name, request.version);
    const tensor = (t: TensorSpec) => ({ name: t.name, datatype: t.datatype, shape: [-1, ...t.dims] });
    return {
      name: info.model,
      versions: [String(info.version)],
      platform: PLATFORM,
      inputs: inputsOf(signature).map(tensor),
      outputs: outputsOf(signature).map(tensor),
    };
  }

  async modelInfer(
    request: oip.ModelInferRequest,
    context: ClassifyContext = {},
  ): Promise<oip.ModelInferResponse> {
    const ref = refOf(request.modelName, request.modelVersion);
    const head = headOf(request);
    let parsed: ReturnType<typeof parseInfer> | undefined;
    let signature: Signature | undefined;
    const forward = await this.known(request.modelName, request.modelVersion, () =>
      this.classification.forward(
        ref,
        (model) => {
          signature = signatureOf(model.manifest);
          parsed = parseInfer(request, signature, {
            id: request.id,
            model: request.modelName,
            maxBatchSize: this.options.batching.maxBatchSize,
          });
          return parsed.inputs;
        },
        head,
        context,
      ),
    );
    if (!parsed || !signature) throw new Error('forward() returned without preparing its inputs');
    const { outputs, raw } = inferOutputs(parsed, forward.items, head, signature);
    return oipClient.ModelInferResponse.fromPartial({
      modelName: forward.model.name,
      modelVersion: String(forward.model.version),
      id: request.id,
      outputs,
      rawOutputContents: raw,
    });
  }

  /** Max batch size, dynamic batching and the tensors, as Triton's model configuration describes them. */
  async modelConfig(request: oip.ModelConfigRequest): Promise<oip.ModelConfigResponse> {
    const { info, signature } = await this.describe(request.name, request.version);
    const { maxBatchSize, maxQueueDelayMs, maxQueueSize } = this.options.batching;
    // TYPE_STRING is model_config.proto's name for BYTES.
    const type = (t: TensorSpec) => (t.datatype === 'FP32' ? 11 : 13);
    return oipClient.ModelConfigResponse.fromPartial({
      config: {
        name: info.model,
        platform: PLATFORM,
        backend: BACKEND,
        versionPolicy: { specific: { versions: [info.version] } },
        maxBatchSize,
        input: inputsOf(signature).map((t) => ({
          name: t.name,
          dataType: type(t),
          dims: t.dims,
          optional: true,
        })),
        output: outputsOf(signature).map((t) => ({
          name: t.name,
          dataType: type(t),
          dims: t.dims,
          labelFilename: t.dims[0] === signature.labels.length ? 'labels.txt' : '',
        })),
        dynamicBatching: {
          preferredBatchSize: [maxBatchSize],
          maxQueueDelayMicroseconds: Math.round(maxQueueDelayMs * 1000),
          defaultQueuePolicy: { maxQueueSize },
        },
      },
    });
  }

  /** Counts and times per model version, from the engine's Prometheus histograms. */
  async modelStatistics(request: oip.ModelStatisticsRequest): Promise<oip.ModelStatisticsResponse> {
    if (request.name) await this.describe(request.name, request.version);
    const stats = await versionStatistics(this.metrics);
    return oipClient.ModelStatisticsResponse.fromPartial({
      modelStats: stats.filter(
        (s) =>
          (!request.name || s.name === request.name) && (!request.version || s.version === request.version),
      ),
    });
  }

  /** Every registry model and version; a version is READY while it is loaded. */
  async repositoryIndex(request: oip.RepositoryIndexRequest): Promise<oip.RepositoryIndexResponse> {
    const loaded = new Set(this.host.loadedModels().map(({ model }) => model.key));
    const models = [];
    for (const name of await this.registry.listModels()) {
      for (const version of await this.registry.listVersions(name)) {
        const ready = loaded.has(`${name}:${version}`);
        if (request.ready && !ready) continue;
        models.push({ name, version: String(version), state: ready ? 'READY' : 'UNAVAILABLE', reason: '' });
      }
    }
    return { models };
  }

  /** Loads what the name routes to (its production version), as a first request would. */
  async repositoryModelLoad(
    request: oip.RepositoryModelLoadRequest,
  ): Promise<oip.RepositoryModelLoadResponse> {
    if (Object.keys(request.parameters).length > 0) {
      throw new InvalidArgumentError(
        'RepositoryModelLoad takes no parameters here: versions come from the registry, not from an uploaded config or files',
      );
    }
    const lease = await this.known(request.modelName, '', () =>
      this.host.acquire(refOf(request.modelName, '')),
    );
    lease.release();
    return {};
  }

  repositoryModelUnload(): never {
    throw new UnimplementedError(
      'RepositoryModelUnload is not supported: a loaded version serves until the registry moves its alias ' +
        '(hot reload retires it then); move or remove the alias in the registry instead',
    );
  }

  private async describe(name: string, version: string) {
    const info = await this.known(name, version, () =>
      this.registry.getManifest(refOf(name, version), { integrity: 'size' }),
    );
    return { info, signature: signatureOf(info.manifest) };
  }

  /** Runs `work`; a NOT_FOUND from resolving the model becomes Triton's unknown-model error. */
  private async known<T>(name: string, version: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof DomainError) || error.kind !== 'NOT_FOUND') throw error;
      const modelExists = await this.registry.listVersions(name).then(
        () => true,
        () => false,
      );
      throw unknownModel(name, modelExists ? version : '');
    }
  }
}

/** Triton's message for a model (or version) it does not have: NOT_FOUND. */
export function unknownModel(name: string, version: string): NotFoundError {
  return new NotFoundError(
    `Request for unknown model: '${name}'${version ? ` version ${version}` : ''} is not found`,
  );
}

/** The registry reference of a protocol (name, version): `name` (production) or `name:version`. */
export function refOf(name: string, version: string): string {
  if (version !== '' && !/^[1-9]\d*$/.test(version)) {
    throw new InvalidArgumentError(
      `failed to get model version from specified version string '${version}', version should be an integral value > 0`,
    );
  }
  let ref;
  try {
    ref = parseModelRef(name);
  } catch {
    throw unknownModel(name, '');
  }
  if (ref.kind !== 'default') throw unknownModel(name, '');
  return version ? formatModelRef({ name: ref.name, kind: 'version', version: Number(version) }) : ref.name;
}
