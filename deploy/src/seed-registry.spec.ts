import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { run, workspaceRoot } from './tools';

const script = join(workspaceRoot, 'docker', 'seed-registry.mjs');
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'deit-seed-'));
  dirs.push(dir);
  return dir;
}

function seedWith(model: string, marker: string): string {
  const seed = tempDir();
  mkdirSync(join(seed, model, '1'), { recursive: true });
  mkdirSync(join(seed, model, 'aliases'), { recursive: true });
  mkdirSync(join(seed, '.tmp'), { recursive: true });
  writeFileSync(join(seed, model, '1', 'model.onnx'), marker);
  writeFileSync(join(seed, model, 'aliases', 'production.json'), '{"to":1}');
  writeFileSync(join(seed, model, '.lock'), '');
  return seed;
}

describe('docker/seed-registry.mjs (the trainer pod seeds the registry volume)', () => {
  it('publishes the seed models into an empty registry, without locks or staging leftovers', () => {
    const seed = seedWith('fmnist-deit', 'seed');
    const registry = join(tempDir(), 'registry');
    const result = run(process.execPath, [script, seed, registry]);
    expect(result.status, result.stderr).toBe(0);
    expect(readFileSync(join(registry, 'fmnist-deit', '1', 'model.onnx'), 'utf8')).toBe('seed');
    expect(readdirSync(join(registry, 'fmnist-deit')).sort()).toEqual(['1', 'aliases']);
    expect(readdirSync(join(registry, '.tmp'))).toEqual([]);
    expect(readdirSync(registry).sort()).toEqual(['.tmp', 'fmnist-deit']);
  });

  it('leaves a model the registry already has alone (restarts keep promotions)', () => {
    const registry = tempDir();
    const first = run(process.execPath, [script, seedWith('fmnist-deit', 'old'), registry]);
    expect(first.status, first.stderr).toBe(0);
    writeFileSync(join(registry, 'fmnist-deit', 'aliases', 'production.json'), '{"to":2}');
    const again = run(process.execPath, [script, seedWith('fmnist-deit', 'new'), registry]);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain('present, left alone');
    expect(readFileSync(join(registry, 'fmnist-deit', '1', 'model.onnx'), 'utf8')).toBe('old');
    expect(readFileSync(join(registry, 'fmnist-deit', 'aliases', 'production.json'), 'utf8')).toBe(
      '{"to":2}',
    );
  });

  it('seeds from the repository registry/ as the image does', () => {
    const registry = tempDir();
    const result = run(process.execPath, [script, join(workspaceRoot, 'registry'), registry]);
    expect(result.status, result.stderr).toBe(0);
    expect(readdirSync(join(registry, 'fmnist-deit'))).toContain('1');
  });

  it('fails with usage when arguments are missing', () => {
    expect(run(process.execPath, [script]).status).toBe(2);
  });
});
