import { DirectoryRegistry } from '../src/index';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sampleRequest, tempDir } from './fixtures/sample';

const REGISTER = join(__dirname, '..', '..', '..', 'tools', 'test-support', 'register-ts.cjs');
const WORKER = join(__dirname, 'fixtures', 'publish-worker.ts');
/** Node start-up plus on-the-fly compilation takes a few hundred ms per worker on two shared cores. */
const WORKER_START_MARGIN_MS = 1500;

function startWorker(args: string[]): {
  child: ChildProcess;
  output: Promise<{ code: number | null; stdout: string; stderr: string }>;
} {
  const child = spawn(process.execPath, ['-r', REGISTER, WORKER, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const output = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { child, output };
}

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await cleanup();
});

describe('several publisher processes', () => {
  it('get distinct consecutive versions and lose nothing', async () => {
    const workers = 4;
    const each = 3;
    const startAt = String(Date.now() + WORKER_START_MARGIN_MS);
    const runs = Array.from({ length: workers }, () => startWorker([dir, 'shared', String(each), startAt]));
    const results = await Promise.all(runs.map((r) => r.output));
    for (const result of results) expect(result, result.stderr).toMatchObject({ code: 0 });

    const published = results.flatMap((r) => JSON.parse(r.stdout) as { version: number; payload: string }[]);
    const versions = published.map((p) => p.version).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: workers * each }, (_, i) => i + 1));

    const registry = await DirectoryRegistry.open(dir);
    expect(await registry.listVersions('shared')).toEqual(versions);
    for (const { version, payload } of published) {
      const loaded = await registry.loadVersion({ name: 'shared', kind: 'version', version });
      expect(loaded.files.get('model.onnx')?.toString()).toBe(`onnx:${payload}`);
    }
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
  });

  it('a publisher killed between staging and rename leaves no visible version', async () => {
    const { child, output } = startWorker([dir, 'crashy', '1', '0', 'hang']);
    const registry = await DirectoryRegistry.open(dir);
    const events: string[] = [];
    const subscription = registry.watch((e) => events.push(`${e.type} ${e.model}`), {
      mode: 'poll',
      pollIntervalMs: 20,
    });
    await subscription.ready;
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('staged')) resolve();
      });
      child.on('close', () => reject(new Error('worker exited before staging')));
    });
    child.kill('SIGKILL');
    await output;

    // Fully staged (manifest included) yet invisible: nothing listed, resolvable or announced.
    const staged = await readdir(join(dir, '.tmp'));
    expect(staged).toHaveLength(1);
    expect((await readdir(join(dir, '.tmp', staged[0] ?? ''))).sort()).toEqual([
      'labels.txt',
      'manifest.json',
      'model.onnx',
    ]);
    expect(await registry.listModels()).toEqual([]);
    await expect(registry.resolve('crashy')).rejects.toThrow('unknown model "crashy"');
    await new Promise((resolve) => setTimeout(resolve, 100));
    await subscription.close();
    expect(events).toEqual([]);

    // gc removes the leftover once it is old enough; the burnt number is not reused.
    expect((await registry.gc({ keepLast: 1, tempMaxAgeMs: 0 })).tempRemoved).toEqual([
      `.tmp/${staged[0] ?? ''}`,
    ]);
    expect(await readdir(join(dir, '.tmp'))).toEqual([]);
    expect((await registry.publish('crashy', sampleRequest('after'))).version).toBe(2);
  });
});
