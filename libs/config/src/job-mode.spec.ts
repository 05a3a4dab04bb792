import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './define';
import { trainerConfigSpec } from './services';

describe('trainer job mode configuration', () => {
  it('runs jobs in worker processes unless told to use Kubernetes', () => {
    expect(loadConfig(trainerConfigSpec, {}).runner).toBe('process');
    const c = loadConfig(trainerConfigSpec, {
      DEIT_TRAINER_RUNNER: 'kubernetes',
      DEIT_TRAINER_NAMESPACE: 'deit-serve',
      DEIT_FINETUNE_IMAGE: 'registry.example/deit-serve/trainer@sha256:0123',
      DEIT_FINETUNE_WORK_CLAIM: 'work',
    });
    expect(c).toMatchObject({
      runner: 'kubernetes',
      namespace: 'deit-serve',
      finetuneImage: 'registry.example/deit-serve/trainer@sha256:0123',
      finetuneServiceAccount: 'deit-finetune',
      finetuneRegistryClaim: 'deit-registry',
      finetuneWorkClaim: 'work',
    });
  });

  it('rejects names Kubernetes would, at start-up and all at once', () => {
    let caught: unknown;
    try {
      loadConfig(trainerConfigSpec, {
        DEIT_TRAINER_RUNNER: 'k8s',
        DEIT_TRAINER_NAMESPACE: 'Deit_Serve',
        DEIT_FINETUNE_SERVICE_ACCOUNT: 'x'.repeat(64),
        DEIT_FINETUNE_REGISTRY_CLAIM: '-registry',
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const problems = (caught as ConfigError).problems.join('\n');
    expect(problems).toMatch(/DEIT_TRAINER_RUNNER="k8s": must be one of process, kubernetes/);
    expect(problems).toMatch(/DEIT_TRAINER_NAMESPACE="Deit_Serve": must be a DNS label/);
    expect(problems).toMatch(/DEIT_FINETUNE_SERVICE_ACCOUNT=.*at most 63 characters/);
    expect(problems).toMatch(/DEIT_FINETUNE_REGISTRY_CLAIM="-registry": must be a DNS label/);
  });
});
