import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findTools, run, workspaceRoot } from './tools';

interface Stage {
  name: string;
  from: string;
  instructions: { op: string; args: string }[];
}

/** docker/Dockerfile as stages of instructions (continuations joined, comments dropped). */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n');
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const [, op = '', rest = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const instruction = { op: op.toUpperCase(), args: rest.replace(/\s+/g, ' ') };
    if (instruction.op === 'FROM') {
      const [, from = '', name = ''] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args) ?? [];
      stages.push({ name, from, instructions: [] });
    } else if (stages.length === 0 && instruction.op === 'ARG') {
      const [key = '', value = ''] = instruction.args.split('=');
      args.set(key, value);
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return { args, stages };
}

const dockerfile = readFileSync(join(workspaceRoot, 'docker', 'Dockerfile'), 'utf8');
const { args, stages } = parseDockerfile(dockerfile);
const stage = (name: string): Stage => {
  const found = stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage ${name}`);
  return found;
};
/** A stage's instructions including those of the stages it is built FROM. */
const lineage = (name: string): Stage['instructions'] => {
  const s = stage(name);
  const parent = stages.find((p) => p.name === s.from);
  return [...(parent ? lineage(parent.name) : []), ...s.instructions];
};
const resolve = (image: string) => image.replace(/\$\{(\w+)\}/g, (_m, key: string) => args.get(key) ?? '');
const runtimeTargets = ['inference', 'inference-cuda', 'trainer', 'trainer-cuda'];
/** Each runtime target's production node_modules. */
const DEPS_STAGE: Record<string, string> = {
  inference: 'deps',
  trainer: 'deps',
  'inference-cuda': 'deps-cuda',
  'trainer-cuda': 'deps-trainer-cuda',
};
const runArgs = (name: string): string =>
  stage(name)
    .instructions.filter((i) => i.op === 'RUN')
    .map((i) => i.args)
    .join('\n');
const BUILD_TOOLS =
  /\b(gcc|g\+\+|make|build-essential|python3?|node-gyp|npm|npx|yarn|corepack|apt-get install)\b/;

describe('docker/Dockerfile', () => {
  it('pins its base images', () => {
    for (const s of stages) {
      const image = resolve(s.from);
      if (stages.some((p) => p.name === s.from)) continue;
      expect(image, s.name).toMatch(/:[\w.-]+$/);
      expect(image, s.name).not.toMatch(/:latest$/);
    }
    expect(resolve(stage('runtime').from)).toMatch(/^node:20\.\d+-bookworm-slim$/);
    // onnxruntime-gpu 1.30's provider is built for CUDA 13; TensorFlow 2.21 loads CUDA 12 (≥ 12.5).
    expect(resolve(stage('inference-cuda').from)).toMatch(/^nvidia\/cuda:13\.[\d.]+-cudnn-runtime-/);
    expect(resolve(stage('trainer-cuda').from)).toMatch(/^nvidia\/cuda:12\.(5|6|7|8|9)[\d.]*-cudnn-runtime-/);
  });

  it.each(runtimeTargets)('%s: runs as a non-root user, with the service as its command', (target) => {
    const all = lineage(target);
    const user = all.filter((i) => i.op === 'USER').at(-1)?.args;
    expect(user).toBe('10001:10001');
    const cmd = all.filter((i) => i.op === 'CMD').at(-1)?.args ?? '';
    const app = target.startsWith('trainer') ? 'trainer' : 'inference';
    expect(cmd).toContain(`dist/apps/${app}/src/main.js`);
    expect(all.some((i) => i.op === 'HEALTHCHECK')).toBe(false);
  });

  it.each(runtimeTargets)('%s: has no build tools and copies only built artefacts', (target) => {
    const all = lineage(target);
    for (const i of all.filter((x) => x.op === 'RUN')) {
      expect(i.args.replace(/rm -rf [^&]*/, ''), `${target}: RUN ${i.args}`).not.toMatch(BUILD_TOOLS);
    }
    const copies = all.filter((i) => i.op === 'COPY').map((i) => i.args);
    expect(copies).toContain(`--from=${DEPS_STAGE[target]} /src/node_modules node_modules`);
    expect(copies).toContain('--from=build /src/dist dist');
    expect(copies).toContain('proto proto');
    expect(copies.filter((c) => /^(apps|libs)\b/.test(c))).toEqual([]);
  });

  it('removes npm, npx, yarn and corepack from the runtime base', () => {
    const run = stage('runtime').instructions.find((i) => i.op === 'RUN')?.args ?? '';
    for (const tool of [
      '/usr/local/bin/npm',
      '/usr/local/bin/npx',
      '/usr/local/bin/corepack',
      '/usr/local/lib/node_modules',
    ]) {
      expect(run).toContain(tool);
    }
  });

  it('installs production dependencies only, the GPU images through DEIT_GPU=cuda from the registries', () => {
    expect(runArgs('deps')).toBe('npm ci --omit=dev --no-audit --no-fund');
    // The toolchain's DEIT_NATIVE=off: the inference image carries no TensorFlow.
    expect(runArgs('deps-cuda')).toMatch(
      /^DEIT_GPU=cuda npm ci --omit=dev --no-audit --no-fund && test -f \S+\/deit-onnxruntime-cuda\.json$/,
    );
    expect(runArgs('deps-trainer-cuda')).toMatch(
      /^DEIT_NATIVE=on DEIT_GPU=cuda npm ci --omit=dev --no-audit --no-fund && test -f node_modules\/@tensorflow\/tfjs-node-gpu\/deps\/deit-native\.json /,
    );
    // Not onnxruntime-node's own installer, which downloads the provider from outside the registries.
    expect(dockerfile).not.toMatch(/ONNXRUNTIME_NODE_INSTALL=/);
    const cudaEnv = lineage('inference-cuda')
      .filter((i) => i.op === 'ENV')
      .map((i) => i.args)
      .join(' ');
    expect(cudaEnv).toContain('DEIT_EXECUTION_PROVIDER=cuda');
  });

  it('gives the postinstall every module it imports, through COPY and the .dockerignore allowlist', () => {
    const scriptsDir = join(workspaceRoot, 'tools', 'scripts');
    const needed = new Set<string>();
    const visit = (file: string) => {
      if (needed.has(file)) return;
      needed.add(file);
      const source = readFileSync(join(scriptsDir, file), 'utf8');
      for (const [, imported = ''] of source.matchAll(/from '\.\/([\w.-]+\.mjs)'/g)) visit(imported);
    };
    visit('install-native.mjs');
    expect(needed.size).toBeGreaterThan(2);
    // What `COPY tools/scripts/install-*.mjs` takes.
    const copied = new Set(readdirSync(scriptsDir).filter((f) => /^install-.*\.mjs$/.test(f)));
    for (const name of ['deps', 'toolchain-gpu']) {
      expect(stage(name).instructions.map((i) => i.args)).toContain(
        'tools/scripts/install-*.mjs tools/scripts/',
      );
    }
    expect([...needed].filter((f) => !copied.has(f))).toEqual([]);
    const ignore = readFileSync(join(workspaceRoot, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toContain('!tools/scripts/install-*.mjs');
  });

  it('ships the seed registry with inference, and the seeding script with the trainer', () => {
    expect(lineage('inference').map((i) => i.args)).toContain('registry registry');
    expect(lineage('inference-cuda').map((i) => i.args)).toContain('registry registry');
    for (const trainer of ['trainer', 'trainer-cuda']) {
      expect(lineage(trainer).map((i) => i.args)).toContain(
        'docker/seed-registry.mjs docker/seed-registry.mjs',
      );
    }
  });

  it("starts the inference images with the service's start-up settings, as npm start does", async () => {
    const { serviceEnv } = (await import(
      pathToFileURL(join(workspaceRoot, 'tools', 'scripts', 'service-env.mjs')).href
    )) as { serviceEnv: (app: string, env: object) => Record<string, string | undefined> };
    const wanted = serviceEnv('inference', {});
    /** The value of `key` after the stage's ENV instructions (KEY=VALUE pairs, unquoted). */
    const envOf = (name: string, key: string): string | undefined =>
      lineage(name)
        .filter((i) => i.op === 'ENV')
        .flatMap((i) => i.args.split(' '))
        .map((pair) => pair.split(/=(.*)/s))
        .filter(([k]) => k === key)
        .at(-1)?.[1];
    for (const target of ['inference', 'inference-cuda']) {
      expect(envOf(target, 'NODE_OPTIONS'), target).toBe(wanted.NODE_OPTIONS);
      expect(envOf(target, 'GLIBC_TUNABLES'), target).toBe(wanted.GLIBC_TUNABLES);
    }
    expect(wanted.NODE_OPTIONS).toMatch(/--max-semi-space-size=/);
  });

  it('has a .dockerignore that keeps node_modules, tests and registry staging out of the context', () => {
    const ignore = readFileSync(join(workspaceRoot, '.dockerignore'), 'utf8').split('\n');
    for (const line of ['*', '**/node_modules', '**/*.spec.ts', 'registry/.tmp', '!proto', '!registry']) {
      expect(ignore).toContain(line);
    }
  });
});

describe.skipIf(!findTools().tools)("BuildKit's Dockerfile checks (deploy/dockerfile-lint, offline)", () => {
  const lint = findTools().tools?.dockerfileLint ?? '';

  it('find nothing to report in docker/Dockerfile', () => {
    const result = run(lint, [join(workspaceRoot, 'docker', 'Dockerfile')]);
    expect(result.stdout + result.stderr).toContain('0 warnings');
    expect(result.status).toBe(0);
  });

  it.each([
    [
      'an undeclared ARG in FROM',
      'FROM node:${NODE_VERSION}-bookworm AS',
      'FROM node:${NODE_VERSON}-bookworm AS',
      'UndefinedArgInFrom',
    ],
    ['inconsistent casing', 'FROM runtime AS trainer', 'FROM runtime as trainer', 'FromAsCasing'],
    [
      'a shell-form CMD (signals would not reach node)',
      'CMD ["node", "--enable-source-maps", "dist/apps/trainer/src/main.js"]',
      'CMD node dist/apps/trainer/src/main.js',
      'JSONArgsRecommended',
    ],
    [
      'a duplicate stage',
      'FROM toolchain-gpu AS deps-cuda',
      'FROM toolchain-gpu AS deps',
      'DuplicateStageName',
    ],
  ])('catch %s, as `docker build --check` does', (_what, from, to, rule) => {
    expect(dockerfile).toContain(from);
    const dir = mkdtempSync(join(tmpdir(), 'deit-dockerfile-'));
    try {
      const bad = join(dir, 'Dockerfile');
      writeFileSync(bad, dockerfile.replace(from, to));
      const result = run(lint, [bad]);
      expect(result.status).not.toBe(0);
      expect(result.stdout).toContain(rule);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
