import { PermissionDeniedError } from '@deit-serve/core';
import { mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PathNotAllowedError, PathSandbox, pathSyntaxProblem, specPaths } from './paths';
import { validateFineTuneSpec, type FineTuneJobSpec } from './spec';

// realpath: macOS and some CI runners put the temp dir behind a symlink.
const base = realpathSync(mkdtempSync(join(tmpdir(), 'path-sandbox-')));
const root = join(base, 'data');
const outside = join(base, 'outside');
for (const dir of [join(root, 'folder', 'cat'), outside]) mkdirSync(dir, { recursive: true });
writeFileSync(join(root, 'model.onnx'), 'x');
writeFileSync(join(outside, 'secret.onnx'), 'x');
symlinkSync(join(outside, 'secret.onnx'), join(root, 'escape.onnx'));
symlinkSync(outside, join(root, 'escape-dir'));
symlinkSync(join(root, 'model.onnx'), join(root, 'alias.onnx'));
symlinkSync(join(base, 'nowhere'), join(root, 'dangling.onnx'));
symlinkSync(join(root, 'loop-b'), join(root, 'loop-a'));
symlinkSync(join(root, 'loop-a'), join(root, 'loop-b'));
// A root reached through a symlink, and a sibling whose name merely starts like the root's.
symlinkSync(root, join(base, 'linked-root'));
mkdirSync(join(base, 'data-evil'));

afterAll(() => rm(base, { recursive: true, force: true }));

const sandbox = new PathSandbox([root, join(base, 'missing-root')]);

/** The optional messages of a request, left out. */
const UNSET = {
  distillation: undefined,
  augmentation: undefined,
  trainable: undefined,
  promotion: undefined,
};

describe('pathSyntaxProblem', () => {
  it.each([
    ['', 'is required'],
    ['../x', '".." segments'],
    ['a/../b', '".." segments'],
    ['a/..', '".." segments'],
    ['a\\..\\b', '".." segments'],
    ['a\u0000b', 'control characters'],
    ['a\rb', 'control characters'],
    ['a\u001bb', 'control characters'],
    ['x'.repeat(4097), 'at most 4096'],
  ])('refuses %j', (path, problem) => {
    expect(pathSyntaxProblem(path)).toContain(problem);
  });

  it.each(['/a/b', 'rel/x', 'a..b', '.hidden/x', '/a/./b', 'ünïcode/ok'])('accepts %j', (path) => {
    expect(pathSyntaxProblem(path)).toBeUndefined();
  });
});

describe('PathSandbox', () => {
  it.each([
    ['a file inside a root', () => join(root, 'model.onnx')],
    ['a root itself', () => root],
    ['a folder inside a root', () => join(root, 'folder', 'cat')],
    ['a symlink that stays inside', () => join(root, 'alias.onnx')],
    ['a path through a symlinked root', () => join(base, 'linked-root', 'model.onnx')],
    ['a missing file inside a root (reported missing later)', () => join(root, 'not', 'yet.onnx')],
  ])('allows %s', async (_what, path) => {
    expect(await sandbox.verdict(path())).toMatchObject({ allowed: true });
  });

  it.each([
    ['an absolute path outside every root', () => '/etc/passwd', 'is outside the data roots'],
    ['a sibling sharing the root’s prefix', () => join(base, 'data-evil'), 'is outside the data roots'],
    ['a missing path outside', () => join(outside, 'new.onnx'), 'is outside the data roots'],
    ['a relative path leaving the roots', () => 'package.json', 'is outside the data roots'],
    ['a file symlink pointing out', () => join(root, 'escape.onnx'), 'through a symbolic link'],
    [
      'a folder symlink pointing out',
      () => join(root, 'escape-dir', 'secret.onnx'),
      'through a symbolic link',
    ],
    ['a dangling symlink', () => join(root, 'dangling.onnx'), 'cannot be resolved'],
    ['a symlink loop', () => join(root, 'loop-a'), 'cannot be resolved'],
    ['a ".." climb', () => `${root}/../outside/secret.onnx`, '".." segments'],
    ['a NUL byte', () => `${root}/model.onnx\u0000.png`, 'control characters'],
  ])('refuses %s', async (_what, path, problem) => {
    const verdict = await sandbox.verdict(path());
    expect(verdict.allowed).toBe(false);
    expect(verdict).toMatchObject({ problem: expect.stringContaining(problem) as string });
  });

  it('resolves where a symlink really leads, for the server’s log', async () => {
    expect(await sandbox.verdict(join(root, 'escape.onnx'))).toMatchObject({
      allowed: false,
      resolved: join(outside, 'secret.onnx'),
    });
    expect(await sandbox.contains(join(root, 'alias.onnx'))).toBe(true);
    expect(await sandbox.contains(join(root, 'escape-dir'))).toBe(false);
  });

  it('refuses every path of a spec outside the roots with one PERMISSION_DENIED naming the fields', async () => {
    const spec: FineTuneJobSpec = validateFineTuneSpec({
      outputModel: 'm',
      student: { safetensors: { path: join(root, 'escape.onnx'), preset: 'deit_pico_distilled_patch4_28' } },
      teacher: { onnxPath: join(root, 'model.onnx') },
      dataset: {
        imageFolder: { trainDir: join(root, 'folder'), valDir: '/etc' },
        validationFraction: 0,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
      optimization: { epochs: 1, batchSize: 8, lrFixed: false, warmupEpochs: 0 },
      seed: 0,
      evalIntervalEpochs: 0,
      ...UNSET,
    });
    expect(specPaths(spec).map((p) => p.field)).toEqual([
      'student.safetensors.path',
      'teacher.onnx_path',
      'dataset.image_folder.train_dir',
      'dataset.image_folder.val_dir',
    ]);
    const error = await sandbox.assertSpecAllowed(spec).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(PathNotAllowedError);
    expect(error).toBeInstanceOf(PermissionDeniedError);
    const denied = error as PathNotAllowedError;
    expect(denied.kind).toBe('PERMISSION_DENIED');
    expect(denied.denials.map((d) => d.field)).toEqual([
      'student.safetensors.path',
      'dataset.image_folder.val_dir',
    ]);
    expect(denied.message).toMatch(/student\.safetensors\.path: .*through a symbolic link/);
    expect(denied.message).toMatch(/dataset\.image_folder\.val_dir: "\/etc" is outside the data roots/);
    // Where the symlink leads is for the server's log, not for the caller.
    expect(denied.message).not.toContain('secret.onnx');
    expect(denied.denials[0]?.resolved).toBe(join(outside, 'secret.onnx'));
  });

  it('checks the default Fashion-MNIST folder like any other path', async () => {
    const spec = validateFineTuneSpec({
      outputModel: 'm',
      student: { preset: 'deit_pico_distilled_patch4_28' },
      teacher: undefined,
      dataset: {
        fashionMnist: { dir: '', evalOnTest: false },
        validationFraction: 0,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
      optimization: { epochs: 1, batchSize: 8, lrFixed: false, warmupEpochs: 0 },
      seed: 0,
      evalIntervalEpochs: 0,
      ...UNSET,
    });
    await expect(sandbox.assertSpecAllowed(spec)).rejects.toThrow(/dataset\.fashion_mnist\.dir: .*outside/);
    await expect(
      new PathSandbox(['/usr/share/datasets/fashion-mnist']).assertSpecAllowed(spec),
    ).resolves.toBeUndefined();
  });

  it("checks a Fashion-MNIST folder's four files too: one that a symlink leads out is refused up front", async () => {
    const fm = join(root, 'fm');
    mkdirSync(fm);
    writeFileSync(join(fm, 'train-images-idx3-ubyte.gz'), 'x');
    // t10k files missing: the job reports those; train labels: a symlink out of the roots.
    symlinkSync(join(outside, 'secret.onnx'), join(fm, 'train-labels-idx1-ubyte.gz'));
    const spec = validateFineTuneSpec({
      outputModel: 'm',
      student: { preset: 'deit_pico_distilled_patch4_28' },
      teacher: undefined,
      dataset: {
        fashionMnist: { dir: fm, evalOnTest: false },
        validationFraction: 0,
        maxTrainImages: 0,
        maxEvalImages: 0,
      },
      optimization: { epochs: 1, batchSize: 8, lrFixed: false, warmupEpochs: 0 },
      seed: 0,
      evalIntervalEpochs: 0,
      ...UNSET,
    });
    const error = (await sandbox.assertSpecAllowed(spec).catch((e: unknown) => e)) as PathNotAllowedError;
    expect(error).toBeInstanceOf(PathNotAllowedError);
    expect(error.denials.map((d) => [d.field, d.path])).toEqual([
      ['dataset.fashion_mnist.dir', join(fm, 'train-labels-idx1-ubyte.gz')],
    ]);
    expect(error.message).toMatch(
      /train-labels-idx1-ubyte\.gz" leads outside the data roots through a symbolic link/,
    );
    await rm(join(fm, 'train-labels-idx1-ubyte.gz'));
    await expect(sandbox.assertSpecAllowed(spec)).resolves.toBeUndefined();
  });

  it('takes relative roots and paths against its working directory', async () => {
    const relativeRoots = new PathSandbox(['data'], base);
    expect(relativeRoots.roots).toEqual([root]);
    expect(await relativeRoots.contains('data/model.onnx')).toBe(true);
    expect(await relativeRoots.contains('outside/secret.onnx')).toBe(false);
    expect(await relativeRoots.contains('data/escape.onnx')).toBe(false);
  });

  it('travels as JSON: the copy has the same roots and working directory, and the same verdicts', async () => {
    const relativeRoots = new PathSandbox(['data'], base);
    const copy = PathSandbox.fromConfig(
      JSON.parse(JSON.stringify(relativeRoots.config)) as typeof relativeRoots.config,
    );
    expect(copy.config).toEqual({ roots: [root], cwd: base });
    expect(await copy.contains('data/model.onnx')).toBe(true);
    expect(await copy.contains('outside/secret.onnx')).toBe(false);
  });

  it('needs at least one root', () => {
    expect(() => new PathSandbox([])).toThrow(RangeError);
  });
});
