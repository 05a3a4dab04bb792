import { countOnnxParameters } from '@deit-serve/model/onnx-codec';
import { type inferenceV1 } from '@deit-serve/proto';
import { labelsInOrder, type ModelRegistry } from '@deit-serve/registry';
import type { ModelHost } from './model-host';

/** ListModels and GetModel: what the registry holds and what this server has loaded. */
export class ModelCatalog {
  /** Parameter counts by model.onnx's sha256: read once per file, kept (a number per version). */
  private readonly parameterCounts = new Map<string, Promise<number>>();

  constructor(
    private readonly registry: ModelRegistry,
    private readonly host: ModelHost,
    private readonly defaultModel: string,
  ) {}

  async list(): Promise<inferenceV1.ListModelsResponse> {
    const loaded = this.host.loadedModels();
    const models = await Promise.all(
      (await this.registry.listModels()).map(async (name) => ({
        name,
        versions: await this.registry.listVersions(name),
        // A damaged alias file leaves its alias out instead of failing the listing (health shows it).
        aliases: (await this.registry.inspectAliases(name)).aliases,
        loaded: loaded
          .filter(({ model }) => model.name === name)
          .map(({ model, aliases }) => ({
            version: model.version,
            sha256: model.sha256,
            loadedAt: model.loadedAt,
            aliases,
          })),
      })),
    );
    return { models };
  }

  async describe(ref: string): Promise<inferenceV1.GetModelResponse> {
    const info = await this.registry.getManifest(ref || this.defaultModel, { integrity: 'size' });
    const m = info.manifest;
    const metrics: inferenceV1.Metric[] = [];
    if (m.metrics) {
      const top1 = m.metrics.top1;
      const add = (head: string, value: number | null) => {
        if (value !== null) metrics.push({ name: 'top1', head, dataset: m.metrics?.eval_set ?? '', value });
      };
      add('cls', top1.cls);
      add('dist', top1.dist);
      add('average', top1.avg);
      add('teacher', m.metrics.teacher_top1);
    }
    const lineage = m.lineage;
    const sha256 = m.files['model.onnx']?.sha256 ?? '';
    return {
      model: {
        name: info.model,
        version: info.version,
        sha256,
        alias: info.alias ?? '',
      },
      architecture: m.architecture,
      preset: m.preset,
      input: {
        imageSize: m.input.image_size,
        channels: m.input.channels,
        mean: m.input.mean,
        std: m.input.std,
        interpolation: m.input.interpolation,
        cropPct: m.input.crop_pct,
      },
      clsOutput: m.outputs.cls,
      distOutput: m.outputs.dist ?? '',
      labels: labelsInOrder(m.labels),
      metrics,
      lineage: {
        parent: lineage?.parent ? `${lineage.parent.name}:${lineage.parent.version}` : '',
        teacher: lineage?.teacher ?? '',
        dataset: lineage?.dataset?.name ?? '',
        datasetSha256: lineage?.dataset?.sha256 ?? '',
        hyperparametersJson: JSON.stringify(lineage?.hyperparameters ?? {}),
        gitCommit: lineage?.git_commit ?? '',
        jobId: lineage?.job_id ?? '',
      },
      createdAt: new Date(m.created_at),
      parameters: await this.parameters(info.model, info.version, sha256),
    };
  }

  private parameters(model: string, version: number, sha256: string): Promise<number> {
    let count = this.parameterCounts.get(sha256);
    if (count === undefined) {
      count = this.registry
        .loadVersion({ name: model, kind: 'version', version }, { files: ['model.onnx'] })
        .then((loaded) => countOnnxParameters(loaded.files.get('model.onnx') ?? new Uint8Array()));
      // A failed read is not remembered: the next GetModel tries again.
      count.catch(() => this.parameterCounts.delete(sha256));
      this.parameterCounts.set(sha256, count);
    }
    return count;
  }
}
