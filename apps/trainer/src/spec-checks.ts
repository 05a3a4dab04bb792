import type { TrainerConfig } from '@deit-serve/config';
import { sourcesSpecCheck } from '@deit-serve/finetune';
import type { SpecCheck } from '@deit-serve/trainer-engine';
import type { ModelRegistry } from '@deit-serve/registry';
import { PathSandbox } from '@deit-serve/trainer-engine';

/**
 * The source checks every submitted spec passes before it is queued, from the configuration: paths
 * inside DEIT_TRAINER_DATA_ROOTS (every file read through the sandbox's checked FileAccess, as the
 * worker reads them), dataset size limits, the registry's models. main() and the sandbox e2e test
 * wire the same ones.
 */
export function sourceChecks(config: TrainerConfig, registry: ModelRegistry): SpecCheck[] {
  return [
    sourcesSpecCheck({
      registry,
      teacherThreads: 1,
      sandbox: new PathSandbox(config.dataRoots),
      datasetLimits: { maxImages: config.maxDatasetImages, maxBytes: config.maxDatasetBytes },
    }),
  ];
}
