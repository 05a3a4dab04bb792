import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './define';
import { inferenceConfigSpec, trainerConfigSpec } from './services';

describe('loadConfig', () => {
  it('gives every documented default when nothing is set', () => {
    const c = loadConfig(inferenceConfigSpec, {});
    expect(c.grpcPort).toBe(50051);
    expect(c.metricsPort).toBe(9464);
    expect(c.executionProvider).toBe('cpu');
    expect(c.maxBatchSize).toBe(8);
    expect(c.reflection).toBe(true);
    const t = loadConfig(trainerConfigSpec, {});
    expect(t.grpcPort).toBe(50052);
    expect(t.maxConcurrentJobs).toBe(1);
    for (const spec of [inferenceConfigSpec, trainerConfigSpec]) {
      const loaded = loadConfig(spec, {}) as Record<string, unknown>;
      for (const [key, f] of Object.entries(spec)) expect(loaded[key]).toEqual(f.default);
    }
  });

  it('parses and types values from strings', () => {
    const c = loadConfig(inferenceConfigSpec, {
      DEIT_GRPC_PORT: '6000',
      DEIT_EXECUTION_PROVIDER: 'cuda',
      DEIT_GRPC_REFLECTION: 'false',
    });
    expect(c.grpcPort).toBe(6000);
    expect(c.executionProvider).toBe('cuda');
    expect(c.reflection).toBe(false);
  });

  it('reports every bad variable in one error', () => {
    let caught: unknown;
    try {
      loadConfig(inferenceConfigSpec, {
        DEIT_GRPC_PORT: '70000',
        DEIT_EXECUTION_PROVIDER: 'tpu',
        DEIT_MAX_BATCH_SIZE: 'many',
        DEIT_GRPC_REFLECTION: 'maybe',
      });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const problems = (caught as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems.join('\n')).toMatch(/DEIT_GRPC_PORT="70000": must be ≤ 65535/);
    expect(problems.join('\n')).toMatch(/DEIT_EXECUTION_PROVIDER="tpu": must be one of cpu, cuda/);
    expect(problems.join('\n')).toMatch(/DEIT_MAX_BATCH_SIZE="many"/);
    expect(problems.join('\n')).toMatch(/DEIT_GRPC_REFLECTION="maybe": must be true or false/);
  });

  it('reads the trainer data roots as a ":"-separated list and refuses an empty or odd one', () => {
    expect(loadConfig(trainerConfigSpec, {}).dataRoots).toEqual([
      '/usr/share/datasets/fashion-mnist',
      'var/trainer/data',
    ]);
    expect(loadConfig(trainerConfigSpec, { DEIT_TRAINER_DATA_ROOTS: '/a::b/c:' }).dataRoots).toEqual([
      '/a',
      'b/c',
    ]);
    expect(() => loadConfig(trainerConfigSpec, { DEIT_TRAINER_DATA_ROOTS: ':::' })).toThrow(
      /DEIT_TRAINER_DATA_ROOTS=":::": must name at least one path/,
    );
    expect(() => loadConfig(trainerConfigSpec, { DEIT_TRAINER_DATA_ROOTS: '/a\nb' })).toThrow(
      /must not contain control characters/,
    );
  });

  it('treats an empty variable as unset and requires variables without a default', () => {
    const spec = { a: { ...inferenceConfigSpec.grpcPort, env: 'A', default: undefined } };
    expect(() => loadConfig(spec, { A: '' })).toThrow(/A is required/);
  });

  it('reads protected aliases as a comma-separated list, `none` for no protection, and a retry budget', () => {
    const defaults = loadConfig(trainerConfigSpec, {});
    expect(defaults.protectedAliases).toEqual(['production']);
    expect(defaults.jobMaxRetries).toBe(3);
    const set = loadConfig(trainerConfigSpec, {
      DEIT_PROTECTED_ALIASES: 'production, stable',
      DEIT_JOB_MAX_RETRIES: '0',
    });
    expect(set.protectedAliases).toEqual(['production', 'stable']);
    expect(set.jobMaxRetries).toBe(0);
    expect(loadConfig(trainerConfigSpec, { DEIT_PROTECTED_ALIASES: 'none' }).protectedAliases).toEqual([]);
    expect(() => loadConfig(trainerConfigSpec, { DEIT_PROTECTED_ALIASES: 'Prod/../x' })).toThrow(
      /DEIT_PROTECTED_ALIASES="Prod\/\.\.\/x": each must be an alias name/,
    );
    expect(() => loadConfig(trainerConfigSpec, { DEIT_JOB_MAX_RETRIES: '-1' })).toThrow(
      /DEIT_JOB_MAX_RETRIES="-1": must be ≥ 0/,
    );
  });
});
