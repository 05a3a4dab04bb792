import type { inferenceV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { publishTinyDeit } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { classify, startInference, tinyTensor, type Inference } from './support';

/**
 * ListModels' LoadedVersion.aliases names every alias that routes to the version on this server,
 * including the `production` alias a bare name or the default model goes through: a fresh server
 * asked only for its default model reported no alias at all.
 */
let inference: Inference;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'deit-loaded-aliases-'));
  const registry = await DirectoryRegistry.open(dir, { create: true });
  await publishTinyDeit(registry, 'tiny', { seed: 1 });
  await publishTinyDeit(registry, 'tiny', { seed: 2 });
  await registry.setAlias('tiny', 'production', 1);
  inference = await startInference(dir);
}, 60_000);

afterAll(async () => {
  await inference?.close();
});

const listModels = () =>
  new Promise<inferenceV1Client.ListModelsResponse>((resolve, reject) =>
    inference.client.listModels({}, (err, r) => (err ? reject(err) : resolve(r))),
  );

it('names production on the version the default model and bare names route to, once, and no alias on a pin', async () => {
  await classify(inference.client, { model: '', tensor: tinyTensor(0) });
  let loaded = (await listModels()).models.find((m) => m.name === 'tiny')?.loaded ?? [];
  expect(loaded.map((l) => [l.version, l.aliases])).toEqual([[1, ['production']]]);

  await classify(inference.client, { model: 'tiny', tensor: tinyTensor(0) });
  await classify(inference.client, { model: 'tiny@production', tensor: tinyTensor(0) });
  await classify(inference.client, { model: 'tiny:2', tensor: tinyTensor(0) });
  loaded = [...((await listModels()).models.find((m) => m.name === 'tiny')?.loaded ?? [])].sort(
    (a, b) => a.version - b.version,
  );
  expect(loaded.map((l) => [l.version, l.aliases])).toEqual([
    [1, ['production']],
    [2, []],
  ]);
});
