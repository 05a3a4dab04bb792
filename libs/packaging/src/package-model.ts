import { FailedPreconditionError, maxAbsDiff } from '@deit-serve/core';
import {
  type DeitOnnxConfig,
  exportDeitOnnx,
  exportRegNetYOnnx,
  type NamedWeights,
  OnnxIoName,
  type RegNetYOnnxConfig,
} from '@deit-serve/model';
import {
  encodeTensor,
  type Id2Label,
  type InputSpec,
  type Lineage,
  type ManifestFields,
  type ModelRegistry,
  type PublishRequest,
  type VersionInfo,
} from '@deit-serve/registry';
import { OnnxModelSession } from '@deit-serve/runtime';

/** Tolerance of the manifest's self-check: the same file on the same runtime reproduces far tighter. */
export const SELF_CHECK_TOLERANCE = { atol: 1e-4, rtol: 1e-4 };

export type ModelSpec =
  { architecture: 'deit'; config: DeitOnnxConfig } | { architecture: 'regnety'; config: RegNetYOnnxConfig };

export interface PackageRequest {
  spec: ModelSpec;
  preset: string;
  weights: NamedWeights;
  labels: readonly string[];
  input: Omit<InputSpec, 'name'>;
  metrics?: ManifestFields['metrics'];
  lineage?: Partial<Lineage>;
  /**
   * Outputs the source framework (tfjs) computed for `sample`: the exported file must reproduce them
   * within `tolerance`, or packaging fails — a wrong export never reaches the registry.
   */
  reference?: { sample: Float32Array; outputs: Record<string, Float32Array>; tolerance?: number };
  /** Extra files (report.md, curves.png...). */
  extraFiles?: Record<string, Uint8Array>;
}

/**
 * Turns weights into a publishable version: ONNX export, a check of the file against the source
 * framework's outputs, and a self-check sample (input + expected outputs computed by onnxruntime)
 * that every loader re-runs before serving.
 */
export async function packageModel(request: PackageRequest): Promise<PublishRequest> {
  const { spec, input } = request;
  const onnx =
    spec.architecture === 'deit'
      ? exportDeitOnnx(spec.config, request.weights, { preset: request.preset })
      : exportRegNetYOnnx(spec.config, request.weights, { preset: request.preset });
  const outputs: { cls: string; dist: string | null } =
    spec.architecture === 'regnety'
      ? { cls: OnnxIoName.logits, dist: null }
      : { cls: OnnxIoName.clsLogits, dist: spec.config.distilled ? OnnxIoName.distLogits : null };
  const shape = [1, input.channels, input.image_size, input.image_size];
  const sample = request.reference?.sample ?? deterministicSample(shape[1] * shape[2] * shape[3]);
  const session = await OnnxModelSession.create(onnx, { logger: { warn: () => undefined } });
  let computed: Record<string, Float32Array>;
  try {
    const result = await session.run({ [OnnxIoName.pixelValues]: { data: sample, dims: shape } });
    computed = Object.fromEntries(Object.entries(result).map(([name, t]) => [name, t.data]));
  } finally {
    await session.release();
  }
  if (request.reference) {
    const tolerance = request.reference.tolerance ?? 1e-4;
    for (const [name, expected] of Object.entries(request.reference.outputs)) {
      const actual = computed[name];
      const diff = actual ? maxAbsDiff(actual, expected) : Infinity;
      if (!(diff <= tolerance)) {
        throw new FailedPreconditionError(
          `exported ONNX does not reproduce the source model: output ${name} differs by ${diff} (> ${tolerance})`,
        );
      }
    }
  }
  const numClasses = spec.config.numClasses;
  const id2label: Id2Label = Object.fromEntries(request.labels.map((label, i) => [String(i), label]));
  if (request.labels.length !== numClasses) {
    throw new FailedPreconditionError(
      `${request.labels.length} labels for a model with ${numClasses} classes`,
    );
  }
  const expected = Object.fromEntries(
    [outputs.cls, outputs.dist]
      .filter((n): n is string => n !== null)
      .map((name) => [name, encodeTensor([1, numClasses], computed[name] ?? new Float32Array())]),
  );
  return {
    architecture: spec.architecture,
    preset: request.preset,
    input: { name: OnnxIoName.pixelValues, ...input },
    outputs,
    labels: id2label,
    metrics: request.metrics ?? null,
    lineage: request.lineage ? { ...request.lineage } : null,
    self_check: { input: encodeTensor(shape, sample), expected, tolerance: SELF_CHECK_TOLERANCE },
    files: { 'model.onnx': onnx, ...request.extraFiles },
  };
}

export async function packageAndPublish(
  registry: ModelRegistry,
  name: string,
  request: PackageRequest,
): Promise<VersionInfo> {
  return registry.publish(name, await packageModel(request));
}

/** A fixed, input-like sample (values in the normalised range), the same for every export. */
function deterministicSample(length: number): Float32Array {
  let state = 0x9e3779b9;
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state ^ (state >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    out[i] = (state / 0xffffffff) * 4 - 2;
  }
  return out;
}
