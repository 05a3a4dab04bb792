import { DEFAULT_REGISTRY_DIR } from '@deit-serve/config';
import { tempDir } from '@deit-serve/registry/testing';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../cli';
import { IMPORT_USAGE } from './import-model';
import { runModelsCommand } from './models';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './options';

function io(env: Record<string, string | undefined> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = (s: PassThrough) => () => (s.read() as Buffer | null)?.toString() ?? '';
  return { io: { stdout, stderr, env }, out: text(stdout), err: text(stderr) };
}

let dir: string;
let cleanup: () => Promise<void>;
let cwd: string;

beforeEach(async () => {
  ({ dir, cleanup } = await tempDir('deit-models-'));
  cwd = process.cwd();
});
afterEach(async () => {
  process.chdir(cwd);
  await cleanup();
});

describe('deit models: one command in the CLI', () => {
  it('routes `models import` to the importer, from runModelsCommand and from runCli alike', async () => {
    const direct = io();
    expect(await runModelsCommand(['import', '--help'], direct.io)).toBe(EXIT_OK);
    expect(direct.out()).toBe(IMPORT_USAGE);
    const viaCli = io();
    expect(await runCli(['models', 'import', '--help'], viaCli.io)).toBe(EXIT_OK);
    expect(viaCli.out()).toBe(IMPORT_USAGE);
  });

  it('lists import in its usage', async () => {
    const t = io();
    expect(await runModelsCommand(['--help'], t.io)).toBe(EXIT_OK);
    const usage = t.out();
    expect(usage).toMatch(/^ {2}import --safetensors FILE \.\.\. +publish a timm checkpoint/m);
    expect(usage).toContain(`else ./${DEFAULT_REGISTRY_DIR})`);
  });

  it("opens the configuration's default registry directory when neither --registry nor the env says", async () => {
    process.chdir(dir);
    const t = io();
    expect(await runModelsCommand(['list'], t.io)).toBe(EXIT_FAILURE);
    expect(t.err()).toContain(`registry directory ${join(dir, DEFAULT_REGISTRY_DIR)} does not exist`);
  });

  it('refuses a bad --keep with the shared flag message and exit code 2', async () => {
    const t = io({ DEIT_REGISTRY_DIR: dir });
    expect(await runModelsCommand(['gc', '--keep', '1.5'], t.io)).toBe(EXIT_USAGE);
    expect(t.err()).toMatch(
      /^deit models: --keep must be a positive integer, not "1\.5"\n\nUsage: deit models/,
    );
  });
});
