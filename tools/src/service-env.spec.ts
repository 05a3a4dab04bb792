import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { workspaceRoot } from './workspace';

/** tools/scripts/service-env.mjs: the environment `npm start`, the benchmarks and the images start the services with. */
interface ServiceEnvModule {
  SERVICE_PROCESS_SETTINGS: Record<string, { nodeOptions: string[]; glibcTunables: string[] }>;
  serviceEnv(app: string, env?: Record<string, string | undefined>): Record<string, string | undefined>;
}

let mod: ServiceEnvModule;
beforeAll(async () => {
  mod = (await import(
    pathToFileURL(join(workspaceRoot, 'tools', 'scripts', 'service-env.mjs')).href
  )) as ServiceEnvModule;
});

describe('serviceEnv', () => {
  it("adds the inference service's V8 flag and glibc tunable to an environment that has neither", () => {
    const env = mod.serviceEnv('inference', { PATH: '/bin' });
    expect(env).toEqual({
      PATH: '/bin',
      NODE_OPTIONS: '--max-semi-space-size=2',
      GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=131072',
    });
  });

  it("keeps the caller's other options and tunables, and the caller's own value of the same one", () => {
    const env = mod.serviceEnv('inference', {
      NODE_OPTIONS: '--enable-source-maps --max-semi-space-size=8',
      GLIBC_TUNABLES: 'glibc.malloc.arena_max=2',
    });
    expect(env.NODE_OPTIONS).toBe('--enable-source-maps --max-semi-space-size=8');
    expect(env.GLIBC_TUNABLES).toBe('glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=131072');
    const own = mod.serviceEnv('inference', { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' });
    expect(own.GLIBC_TUNABLES).toBe('glibc.malloc.mmap_threshold=65536');
  });

  it('leaves the trainer as it is and refuses an unknown service', () => {
    expect(mod.serviceEnv('trainer', { A: '1' })).toEqual({ A: '1' });
    expect(() => mod.serviceEnv('inferense', {})).toThrow(/unknown service "inferense"/);
  });

  it('reads process.env when no environment is given, without changing it', () => {
    const before = process.env.NODE_OPTIONS;
    const env = mod.serviceEnv('inference');
    expect(env.PATH).toBe(process.env.PATH);
    expect(process.env.NODE_OPTIONS).toBe(before);
  });
});
