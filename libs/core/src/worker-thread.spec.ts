import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { siblingModule, spawnModuleWorker } from './worker-thread';

describe('spawnModuleWorker', () => {
  it('runs a TypeScript entry that resolves the workspace aliases (as the training workers do)', async () => {
    const worker = spawnModuleWorker(join(__dirname, '..', 'test', 'fixtures', 'alias-worker.ts'), {});
    try {
      const resolved = await new Promise<unknown>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      expect(resolved).toBe(join(__dirname, 'index.ts'));
    } finally {
      await worker.terminate();
    }
  });
});

describe('siblingModule', () => {
  it('keeps the calling file extension', () => {
    expect(siblingModule('/a/trainer.ts', '/a', 'worker')).toBe('/a/worker.ts');
    expect(siblingModule('/a/trainer.js', '/a', 'worker')).toBe('/a/worker.js');
  });
});
