import type { DirectoryRegistry } from '@deit-serve/registry';
import { sampleRequest } from '@deit-serve/registry/testing';
import { tempRegistryEachTest } from '@deit-serve/registry/testing-hooks';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runModelsCommand } from './models';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './options';

let dir: string;
let registry: DirectoryRegistry;
tempRegistryEachTest((d, r) => {
  [dir, registry] = [d, r];
});

async function run(
  args: string[],
  env: Record<string, string | undefined> = { DEIT_REGISTRY_DIR: dir, DEIT_ACTOR: 'tester' },
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const code = await runModelsCommand(args, { stdout, stderr, env });
  return { code, stdout: out, stderr: err };
}

async function publishThree(): Promise<void> {
  for (const payload of ['1', '2', '3']) await registry.publish('deit-tiny', sampleRequest(payload));
}

describe('deit models', () => {
  it('lists models and versions as tables and JSON', async () => {
    expect(await run(['list'])).toEqual({ code: EXIT_OK, stdout: 'no models\n', stderr: '' });
    await publishThree();
    await registry.publish('other', sampleRequest('o'));
    await registry.setAlias('deit-tiny', 'production', 2);
    await registry.setAlias('deit-tiny', 'staging', 3);

    const models = await run(['list']);
    expect(models.code).toBe(EXIT_OK);
    expect(models.stdout).toBe(
      'MODEL      VERSIONS  LATEST  ALIASES\n' +
        'deit-tiny  3         3       production=2 staging=3\n' +
        'other      1         1       -\n',
    );

    const versions = await run(['list', 'deit-tiny']);
    const lines = versions.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^VERSION +CREATED +PRESET +TOP1-CLS +TOP1-DIST +ALIASES$/);
    expect(lines[2]).toMatch(/^2 +\S+Z +deit_tiny_distilled_patch4_32 +0\.7100 +0\.7300 +production$/);

    const json = JSON.parse((await run(['list', '--json'])).stdout) as { models: unknown[] };
    expect(json.models).toEqual([
      { name: 'deit-tiny', versions: [1, 2, 3], aliases: { production: 2, staging: 3 }, brokenAliases: [] },
      { name: 'other', versions: [1], aliases: {}, brokenAliases: [] },
    ]);
  });

  it('shows a version with its files verified', async () => {
    await publishThree();
    const shown = await run(['show', 'deit-tiny:2']);
    expect(shown.code).toBe(EXIT_OK);
    expect(shown.stdout).toContain('deit-tiny:2 (by version)\n');
    expect(shown.stdout).toMatch(/input +pixel_values 3x32x32, bicubic, crop_pct 0.875/);
    expect(shown.stdout).toMatch(
      /lineage +parent -, teacher regnety_160, dataset cifar3 \(sha256 aaaaaaaaaaaa\)/,
    );
    expect(shown.stdout).toMatch(/integrity +ok/);
    expect(shown.stdout).toMatch(/model\.onnx +6 +[0-9a-f]{64}/);

    const json = JSON.parse((await run(['show', 'deit-tiny', '--json'])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ model: 'deit-tiny', version: 3, via: 'latest', integrity: 'ok' });
  });

  it('promotes and rolls back, recording the actor and reason', async () => {
    await publishThree();
    expect(await run(['promote', 'deit-tiny:1', '--alias', 'production'])).toMatchObject({
      code: EXIT_OK,
      stdout: 'deit-tiny@production: (unset) -> 1\n',
    });
    expect(
      (await run(['promote', 'deit-tiny:3', '--alias', 'production', '--reason', 'better'])).stdout,
    ).toBe('deit-tiny@production: 1 -> 3\n');
    const back = await run(['rollback', 'deit-tiny', '--alias', 'production', '--actor', 'oncall', '--json']);
    expect(JSON.parse(back.stdout)).toMatchObject({ action: 'rollback', from: 3, to: 1, actor: 'oncall' });
    const history = await registry.aliasHistory('deit-tiny', 'production');
    expect(history.map((e) => [e.actor, e.reason])).toEqual([
      ['tester', null],
      ['tester', 'better'],
      ['oncall', null],
    ]);
    // Promote by alias: staging's target becomes production's.
    await registry.setAlias('deit-tiny', 'staging', 2);
    expect((await run(['promote', 'deit-tiny@staging', '--alias', 'production'])).stdout).toBe(
      'deit-tiny@production: 1 -> 2\n',
    );
  });

  it('verifies versions and fails naming the damaged file', async () => {
    await publishThree();
    expect(await run(['verify', 'deit-tiny:1'])).toEqual({
      code: EXIT_OK,
      stdout: 'deit-tiny:1  ok\n',
      stderr: '',
    });
    await writeFile(join(dir, 'deit-tiny', '2', 'model.onnx'), 'onnx:');
    const all = await run(['verify']);
    expect(all.code).toBe(EXIT_FAILURE);
    expect(all.stdout).toBe(
      'deit-tiny:1  ok\n' +
        'deit-tiny:2  FAILED\n' +
        '  deit-tiny:2: file "model.onnx" is truncated: 5 bytes, manifest says 6\n' +
        'deit-tiny:3  ok\n',
    );
    const json = JSON.parse((await run(['verify', 'deit-tiny:2', '--json'])).stdout) as { ok: boolean };
    expect(json.ok).toBe(false);
    // show refuses the damaged version; list still shows it, marked.
    const show = await run(['show', 'deit-tiny:2']);
    expect(show).toMatchObject({
      code: EXIT_FAILURE,
      stderr: 'deit models: deit-tiny:2: file "model.onnx" is truncated: 5 bytes, manifest says 6\n',
    });
    expect((await run(['list', 'deit-tiny'])).stdout).toContain(
      'DAMAGED: deit-tiny:2: file "model.onnx" is truncated',
    );
  });

  it('collects garbage with the documented default of 5 and with --keep', async () => {
    for (let i = 0; i < 7; i++) await registry.publish('m', sampleRequest(String(i)));
    await registry.setAlias('m', 'production', 1);
    expect((await run(['gc', '--dry-run'])).stdout).toBe('would remove m:2\nkept m:1 (alias production)\n');
    expect(await registry.listVersions('m')).toHaveLength(7);
    expect(await run(['gc'])).toMatchObject({
      code: EXIT_OK,
      stdout: 'removed m:2\nkept m:1 (alias production)\n',
    });
    const json = JSON.parse((await run(['gc', '--keep', '2', '--json'])).stdout) as { removed: unknown[] };
    expect(json.removed).toEqual([
      { model: 'm', version: 5 },
      { model: 'm', version: 4 },
      { model: 'm', version: 3 },
    ]);
    expect(await registry.listVersions('m')).toEqual([1, 6, 7]);
  });

  it('uses --registry over DEIT_REGISTRY_DIR and refuses a missing registry', async () => {
    await publishThree();
    expect((await run(['list', '--registry', dir], {})).stdout).toContain('deit-tiny');
    const missing = await run(['list'], { DEIT_REGISTRY_DIR: join(dir, 'nope') });
    expect(missing).toMatchObject({
      code: EXIT_FAILURE,
      stderr: `deit models: registry directory ${join(dir, 'nope')} does not exist\n`,
    });
  });

  it('exits 2 on usage errors and 1 on unknown refs, with clear messages', async () => {
    await publishThree();
    expect((await run([])).code).toBe(EXIT_USAGE);
    expect((await run(['--help'])).stdout).toContain('Usage: deit models');
    const unknownCommand = await run(['frobnicate']);
    expect(unknownCommand.code).toBe(EXIT_USAGE);
    expect(unknownCommand.stderr).toContain('unknown command "frobnicate"');
    expect((await run(['promote', 'deit-tiny:1'])).stderr).toContain('missing --alias');
    expect((await run(['list', '--bogus'])).code).toBe(EXIT_USAGE);
    expect((await run(['gc', '--keep', '0'])).stderr).toContain('--keep must be a positive integer');
    expect((await run(['rollback', 'deit-tiny:1', '--alias', 'production'])).code).toBe(EXIT_USAGE);
    const badName = await run(['show', 'Deit']);
    expect(badName.code).toBe(EXIT_USAGE);
    expect(badName.stderr).toContain('model name "Deit" is invalid');
    const unknown = await run(['show', 'deit-tiny@canary', '--json']);
    expect(unknown.code).toBe(EXIT_FAILURE);
    expect(JSON.parse(unknown.stderr)).toEqual({
      error: { kind: 'NOT_FOUND', message: 'model "deit-tiny" has no alias "canary" (it has no aliases)' },
    });
    const nothingToRollBack = await run(['rollback', 'deit-tiny', '--alias', 'production']);
    expect(nothingToRollBack.code).toBe(EXIT_FAILURE);
    expect(nothingToRollBack.stderr).toContain('has no earlier target to roll back to');
  });

  it('lists a registry with a damaged alias file, naming it, and repairs it from the history', async () => {
    await publishThree();
    await registry.publish('other', sampleRequest('o'));
    await registry.setAlias('deit-tiny', 'production', 1);
    await registry.setAlias('deit-tiny', 'production', 2);
    await registry.setAlias('deit-tiny', 'staging', 3);
    await writeFile(join(dir, 'deit-tiny', 'aliases', 'production.json'), '{"seq": 2, "to": ');
    const notice =
      'damaged alias file deit-tiny/aliases/production.json: alias file deit-tiny/aliases/production.json is ' +
      'not valid JSON (the history last set it to 2); `deit models repair deit-tiny` restores it\n';

    const models = await run(['list']);
    expect(models).toEqual({
      code: EXIT_OK,
      stdout:
        'MODEL      VERSIONS  LATEST  ALIASES\n' +
        'deit-tiny  3         3       production=DAMAGED staging=3\n' +
        'other      1         1       -\n',
      stderr: notice,
    });
    const json = JSON.parse((await run(['list', '--json'])).stdout) as { models: unknown[] };
    expect(json.models[0]).toEqual({
      name: 'deit-tiny',
      versions: [1, 2, 3],
      aliases: { staging: 3 },
      brokenAliases: [
        {
          alias: 'production',
          file: 'deit-tiny/aliases/production.json',
          problem: 'alias file deit-tiny/aliases/production.json is not valid JSON',
          lastRecorded: 2,
        },
      ],
    });
    const versions = await run(['list', 'deit-tiny']);
    expect(versions.code).toBe(EXIT_OK);
    expect(versions.stdout.trimEnd().split('\n')[3]).toMatch(/^3 +.* staging$/);
    expect(versions.stderr).toBe(notice);
    expect((await run(['show', 'deit-tiny:3'])).code).toBe(EXIT_OK);
    // Other aliases still move.
    expect((await run(['promote', 'deit-tiny:1', '--alias', 'staging'])).code).toBe(EXIT_OK);

    expect(await run(['repair', 'deit-tiny'])).toEqual({
      code: EXIT_OK,
      stdout:
        'deit-tiny@production: restored to 2 from the alias history (deit-tiny/aliases/production.json)\n',
      stderr: '',
    });
    expect((await run(['list'])).stdout).toContain('production=2 staging=1');
    expect(await run(['repair', 'deit-tiny'])).toEqual({
      code: EXIT_OK,
      stdout: 'deit-tiny: no damaged alias files\n',
      stderr: '',
    });
  });

  it('repairs a damaged alias by promoting over it', async () => {
    await publishThree();
    await registry.setAlias('deit-tiny', 'production', 1);
    await writeFile(join(dir, 'deit-tiny', 'aliases', 'production.json'), '');
    expect((await run(['promote', 'deit-tiny:3', '--alias', 'production'])).stdout).toBe(
      'deit-tiny@production: 1 -> 3\n',
    );
    expect(await run(['list'])).toMatchObject({
      stdout: expect.stringContaining('production=3'),
      stderr: '',
    });
  });
});
