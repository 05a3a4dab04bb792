import type { Fallback } from '@deit-serve/inference-engine';
import { status } from '@grpc/grpc-js';
import { freePort } from '@deit-serve/grpc-server';
import { type inferenceV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { publishTinyDeit } from '@deit-serve/testing';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  classify,
  failure,
  type Inference,
  type InferenceProcess,
  sample,
  scrape,
  spawnInference,
  startInference,
  tinyTensor,
  waitFor,
} from './support';

/** A spawned server starts from TypeScript sources: slow on a shared two-core box. */
const SPAWNED_TEST_TIMEOUT_MS = 150_000;
/** After a repair the next rescan (poll 100 ms) reloads the version: well within this. */
const RECOVER_WITHIN_MS = 15_000;

/** Flips one byte near the end of a file (same size, different sha256); returns the original bytes. */
function corrupt(file: string): Buffer {
  const original = readFileSync(file);
  const bytes = Buffer.from(original);
  bytes[bytes.length - 10] ^= 0xff;
  writeFileSync(file, bytes);
  return original;
}

async function health(metricsUrl: string): Promise<{ status: string; fallbacks: Fallback[] }> {
  const res = await fetch(metricsUrl.replace(/\/metrics$/, '/health'));
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string; fallbacks: Fallback[] };
}

const fallbackGauge = (text: string, wanted: string, serving: string) =>
  sample(text, 'deit_model_fallback', {
    model: 'tiny',
    alias: 'production',
    wanted_version: wanted,
    serving_version: serving,
  });

describe('serving through registry damage', () => {
  let dir: string;
  let server: InferenceProcess | undefined;
  let inference: Inference | undefined;

  afterEach(async () => {
    await server?.close();
    await inference?.close();
    server = inference = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it(
    'a restarted service whose production version is corrupt serves the newest verifiable version the ' +
      'alias history names, says so, and serves production again once the file is repaired',
    async () => {
      dir = mkdtempSync(join(tmpdir(), 'deit-e2e-damage-'));
      const registry = await DirectoryRegistry.open(dir, { create: true });
      for (const seed of [1, 2, 3]) {
        const { version } = await publishTinyDeit(registry, 'tiny', { seed });
        await registry.setAlias('tiny', 'production', version);
      }
      const file = join(dir, 'tiny', '3', 'model.onnx');
      const original = corrupt(file);

      const metricsPort = await freePort();
      const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
      // spawnInference waits for SERVING: before fallbacks this start never got there.
      server = await spawnInference(dir, {
        DEIT_METRICS_PORT: String(metricsPort),
        DEIT_REGISTRY_POLL_MS: '100',
      });
      const answer = await classify(server.client, { tensor: tinyTensor(0.5) });
      expect(answer.model?.version).toBe(2);
      expect(answer.model?.alias).toBe(''); // production does not name version 2
      expect(server.stderr()).toMatch(
        /tiny: alias production names tiny:3, which cannot be served \(.*sha256.*\); serving tiny:2/,
      );
      expect(fallbackGauge(await scrape(metricsUrl), '3', '2')).toBe(1);
      expect(await health(metricsUrl)).toEqual({
        status: 'SERVING',
        fallbacks: [
          {
            route: 'tiny',
            model: 'tiny',
            alias: 'production',
            wantedVersion: 3,
            servingVersion: 2,
            reason: expect.stringMatching(/tiny:3: file "model.onnx" is corrupt: sha256/) as unknown,
          },
        ],
      });
      expect((await failure(server.client, { model: 'tiny:3', tensor: tinyTensor(0.5) })).code).toBe(
        status.DATA_LOSS,
      );

      writeFileSync(file, original);
      const client = server.client;
      await waitFor(
        'production (tiny:3) to be served after the repair',
        async () => (await classify(client, { tensor: tinyTensor(0.5) })).model?.version === 3,
        RECOVER_WITHIN_MS,
      );
      expect((await classify(client, { tensor: tinyTensor(0.5) })).model?.alias).toBe('production');
      expect(fallbackGauge(await scrape(metricsUrl), '3', '2')).toBeUndefined();
      expect(await health(metricsUrl)).toEqual({ status: 'SERVING', fallbacks: [] });
    },
    SPAWNED_TEST_TIMEOUT_MS,
  );

  it('a running service that refused a corrupt version serves it once its files are repaired, without restart', async () => {
    dir = mkdtempSync(join(tmpdir(), 'deit-e2e-damage-'));
    const registry = await DirectoryRegistry.open(dir, { create: true });
    await publishTinyDeit(registry, 'tiny', { seed: 1 });
    await publishTinyDeit(registry, 'tiny', { seed: 2 });
    await registry.setAlias('tiny', 'production', 1);
    inference = await startInference(dir, {}, { metrics: true });
    const { client } = inference;
    const metricsUrl = inference.metricsUrl ?? '';
    expect((await classify(client, { tensor: tinyTensor(0.5) })).model).toMatchObject({
      version: 1,
      alias: 'production',
    });

    // Version 2 is damaged after the registry verified it for the move and before the server loads it:
    // a lock held by "another host" parks the move between the two.
    const lock = join(dir, 'tiny', '.lock');
    writeFileSync(
      lock,
      JSON.stringify({
        token: 'test',
        pid: process.pid,
        host: `${hostname()}-elsewhere`,
        acquired_at: Date.now(),
      }),
    );
    const verified = new Promise<void>((resolve) => {
      const getManifest = registry.getManifest.bind(registry);
      registry.getManifest = async (...args) => {
        const info = await getManifest(...args);
        resolve(); // the move's integrity check, done before it waits for the lock
        return info;
      };
    });
    const moved = registry.setAlias('tiny', 'production', 2);
    await verified;
    const file = join(dir, 'tiny', '2', 'model.onnx');
    const original = corrupt(file);
    rmSync(lock);
    expect((await moved).to).toBe(2);

    await waitFor('the fallback to be reported', async () => (await health(metricsUrl)).fallbacks.length > 0);
    const answer = await classify(client, { tensor: tinyTensor(0.5) });
    expect(answer.model?.version).toBe(1);
    expect(answer.model?.alias).toBe(''); // no longer production's version
    expect(fallbackGauge(await scrape(metricsUrl), '2', '1')).toBe(1);
    expect((await health(metricsUrl)).fallbacks).toMatchObject([
      { route: 'tiny', alias: 'production', wantedVersion: 2, servingVersion: 1 },
    ]);

    writeFileSync(file, original);
    await waitFor(
      'the repaired tiny:2 to be served',
      async () => (await classify(client, { tensor: tinyTensor(0.5) })).model?.version === 2,
      RECOVER_WITHIN_MS,
    );
    expect((await classify(client, { tensor: tinyTensor(0.5) })).model?.alias).toBe('production');
    expect(fallbackGauge(await scrape(metricsUrl), '2', '1')).toBeUndefined();
    expect(await health(metricsUrl)).toEqual({ status: 'SERVING', fallbacks: [] });
  });

  it('a service started with a damaged production alias file serves what the alias history last named, until the repair', async () => {
    dir = mkdtempSync(join(tmpdir(), 'deit-e2e-damage-'));
    const registry = await DirectoryRegistry.open(dir, { create: true });
    for (const seed of [1, 2]) {
      const { version } = await publishTinyDeit(registry, 'tiny', { seed });
      await registry.setAlias('tiny', 'production', version);
    }
    writeFileSync(join(dir, 'tiny', 'aliases', 'production.json'), '{"seq": 2, "to": ');
    inference = await startInference(dir, {}, { metrics: true });
    const { client } = inference;
    const metricsUrl = inference.metricsUrl ?? '';
    expect((await classify(client, { tensor: tinyTensor(0.5) })).model).toMatchObject({
      version: 2,
      alias: '',
    });
    expect(await health(metricsUrl)).toEqual({
      status: 'SERVING',
      fallbacks: [
        {
          route: 'tiny',
          model: 'tiny',
          alias: 'production',
          wantedVersion: null,
          servingVersion: 2,
          reason: 'alias file tiny/aliases/production.json is not valid JSON',
        },
      ],
    });
    expect(fallbackGauge(await scrape(metricsUrl), 'unknown', '2')).toBe(1);
    const listed = await new Promise<inferenceV1Client.ListModelsResponse>((resolve, reject) =>
      client.listModels({}, (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(listed.models).toMatchObject([{ name: 'tiny', versions: [1, 2], aliases: {} }]);

    expect(await registry.repairAliases('tiny')).toMatchObject([{ alias: 'production', restored: 2 }]);
    await waitFor(
      'production to be named again',
      async () => (await classify(client, { tensor: tinyTensor(0.5) })).model?.alias === 'production',
      RECOVER_WITHIN_MS,
    );
    expect(await health(metricsUrl)).toEqual({ status: 'SERVING', fallbacks: [] });
  });

  it('a service whose production version was deleted by hand serves the version named before it', async () => {
    dir = mkdtempSync(join(tmpdir(), 'deit-e2e-damage-'));
    const registry = await DirectoryRegistry.open(dir, { create: true });
    for (const seed of [1, 2]) {
      const { version } = await publishTinyDeit(registry, 'tiny', { seed });
      await registry.setAlias('tiny', 'production', version);
    }
    rmSync(join(dir, 'tiny', '2'), { recursive: true });
    inference = await startInference(dir, {}, { metrics: true });
    expect((await classify(inference.client, { tensor: tinyTensor(0.5) })).model).toMatchObject({
      version: 1,
      alias: '',
    });
    expect((await health(inference.metricsUrl ?? '')).fallbacks).toMatchObject([
      {
        alias: 'production',
        wantedVersion: null,
        servingVersion: 1,
        reason: expect.stringMatching(/version 2, which does not exist/) as unknown,
      },
    ]);
  });
});
