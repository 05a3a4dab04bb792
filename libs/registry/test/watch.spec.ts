import { DirectoryRegistry, type RegistryEvent, type WatchOptions } from '../src/index';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sampleRequest, tempDir, waitFor } from './fixtures/sample';

let dir: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  await cleanup();
});

function countResources(kind: string): number {
  return process.getActiveResourcesInfo().filter((r) => r === kind).length;
}

const cases: [string, WatchOptions, 'recursive' | 'per-directory' | undefined, 'events' | 'poll'][] = [
  ['events, per directory', { mode: 'events' }, 'per-directory', 'events'],
  ['events, recursive', { mode: 'events' }, 'recursive', 'events'],
  ['polling', { mode: 'poll', pollIntervalMs: 20 }, undefined, 'poll'],
  ['auto', { mode: 'auto', pollIntervalMs: 20 }, undefined, 'events'],
];

describe.each(cases)('watch (%s)', (_name, options, watchStrategy, effectiveMode) => {
  it('reports each change once, only after the rename, and stops on close', async () => {
    const watchersBefore = countResources('FSEventWrap');
    const timersBefore = countResources('Timeout');
    const registry = await DirectoryRegistry.open(dir, { watchStrategy });
    await registry.publish('existing', sampleRequest('0'));
    const events: RegistryEvent[] = [];
    const errors: unknown[] = [];
    const subscription = registry.watch((e) => events.push(e), {
      ...options,
      onError: (e) => errors.push(e),
    });
    expect(subscription.mode).toBe(effectiveMode);
    await subscription.ready;

    await registry.publish('m', sampleRequest('1'));
    await waitFor(() => events.length >= 1, 'version-added m:1');
    await registry.publish('m', sampleRequest('2'));
    await registry.setAlias('m', 'production', 2);
    await waitFor(() => events.length >= 3, 'version 2 and the alias');
    // Things that are not (yet) versions: a staging dir, a manifest-less numbered dir, a temp pointer file.
    await mkdir(join(dir, '.tmp', 'publish-m-half'), { recursive: true });
    await mkdir(join(dir, 'm', '99'));
    await writeFile(join(dir, 'm', '99', 'model.onnx'), 'partial');
    await writeFile(join(dir, 'm', 'aliases', 'staging.json.tmp-1-x'), '{"half');
    await registry.gc({ keepLast: 1 });
    await waitFor(() => events.length >= 4, 'version-removed m:1');
    await new Promise((resolve) => setTimeout(resolve, 150)); // room for duplicates to show up

    expect(events).toEqual([
      { type: 'version-added', model: 'm', version: 1 },
      { type: 'version-added', model: 'm', version: 2 },
      { type: 'alias-moved', model: 'm', alias: 'production', version: 2, previous: null },
      { type: 'version-removed', model: 'm', version: 1 },
    ]);
    expect(errors).toEqual([]);

    await subscription.close();
    await registry.publish('m', sampleRequest('after close'));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(events).toHaveLength(4);
    expect(countResources('FSEventWrap')).toBe(watchersBefore);
    expect(countResources('Timeout')).toBeLessThanOrEqual(timersBefore);
  });
});

describe.each(cases)('watch (%s): files of a version', (_name, options, watchStrategy) => {
  it('reports a version whose files changed in place (a damaged file repaired, or damaged)', async () => {
    const registry = await DirectoryRegistry.open(dir, { watchStrategy });
    await registry.publish('m', sampleRequest('1'));
    await registry.publish('m', sampleRequest('2'));
    const events: RegistryEvent[] = [];
    const subscription = registry.watch((e) => events.push(e), options);
    await subscription.ready;
    await writeFile(join(dir, 'm', '2', 'model.onnx'), 'onnx:X');
    await waitFor(() => events.length >= 1, 'version-changed m:2');
    await new Promise((resolve) => setTimeout(resolve, 150)); // room for other events to show up
    await subscription.close();
    // An in-place write may be seen half-done (truncated, then written): then it is reported twice.
    expect(events.length).toBeLessThanOrEqual(2);
    for (const event of events) expect(event).toEqual({ type: 'version-changed', model: 'm', version: 2 });
  });
});

describe('watch modes', () => {
  it('falls back to polling in auto mode and fails clearly in events mode when the root cannot be watched', async () => {
    const registry = await DirectoryRegistry.open(join(dir, 'root'));
    await rm(join(dir, 'root'), { recursive: true });
    expect(() => registry.watch(() => undefined, { mode: 'events' })).toThrow(/cannot watch .*root/);
    const events: RegistryEvent[] = [];
    const auto = registry.watch((e) => events.push(e), { mode: 'auto', pollIntervalMs: 20 });
    expect(auto.mode).toBe('poll');
    await auto.ready; // a missing root reads as empty
    await registry.publish('m', sampleRequest('1')); // re-creates the root
    await waitFor(() => events.length === 1, 'version-added after the root appeared');
    await auto.close();
  });

  it('keeps reporting when a listener throws', async () => {
    const registry = await DirectoryRegistry.open(dir);
    const seen: number[] = [];
    const errors: unknown[] = [];
    const subscription = registry.watch(
      (e) => {
        if (e.type !== 'version-added') return;
        seen.push(e.version);
        if (e.version === 1) throw new Error('listener bug');
      },
      { mode: 'poll', pollIntervalMs: 20, onError: (e) => errors.push(e) },
    );
    await subscription.ready;
    await registry.publish('m', sampleRequest('1'));
    await waitFor(() => seen.length === 1, 'first event');
    await registry.publish('m', sampleRequest('2'));
    await waitFor(() => seen.length === 2, 'second event');
    await subscription.close();
    expect(errors).toHaveLength(1);
  });
});
