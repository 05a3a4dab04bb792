import { status, type ServiceError } from '@grpc/grpc-js';
import { deitOnnxWeightShapes } from '@deit-serve/model';
import { randomWeights } from '@deit-serve/model/testing';
import { packageModel } from '@deit-serve/packaging';
import { type inferenceV1Client } from '@deit-serve/proto';
import { DirectoryRegistry, encodeTensor } from '@deit-serve/registry';
import { publishTinyDeit, TINY_DEIT, TINY_LABELS } from '@deit-serve/testing';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ClassifyRequest,
  classify,
  failure,
  type Inference,
  newClient,
  pngImage,
  sample,
  scrape,
  sleep,
  startInference,
  tinyTensor,
  waitFor,
} from './support';

/** How long after an alias move every new request must reach the new version (poll is 100 ms). */
const SWITCH_WITHIN_MS = 1500;
const CLIENTS = 4;

interface Answer {
  client: number;
  input: 'tensor' | 'image';
  startedAt: number;
  version?: number;
  sha256?: string;
  probabilities?: number[];
  error?: ServiceError;
}

/**
 * Hot reload under load: a registry change while clients keep classifying. Each response must
 * name the version that computed it, which the test checks against each version's own outputs.
 */
describe('hot reload under load', () => {
  let dir: string;
  let registry: DirectoryRegistry;
  let inference: Inference;
  let inputs: Record<Answer['input'], ClassifyRequest>;
  /** Reference probabilities per `input:version`. */
  const expected = new Map<string, number[]>();
  const shas = new Map<number, string>();
  let running = false;
  const answers: Answer[] = [];
  let load: Promise<void>;

  const probabilities = (res: inferenceV1Client.ClassifyResponse) =>
    [...res.predictions].sort((a, b) => a.index - b.index).map((p) => p.probability);

  /** Each client classifies in a loop, one call at a time, until `running` turns false. */
  function startLoad(): Promise<void> {
    running = true;
    const clients = Array.from({ length: CLIENTS }, () => newClient(inference.service.address));
    return Promise.all(
      clients.map(async (client, i) => {
        const input: Answer['input'] = i % 2 === 0 ? 'tensor' : 'image';
        while (running) {
          const startedAt = Date.now();
          try {
            const res = await classify(client, { ...inputs[input], topK: TINY_LABELS.length });
            answers.push({
              client: i,
              input,
              startedAt,
              version: res.model?.version ?? -1,
              sha256: res.model?.sha256 ?? '',
              probabilities: probabilities(res),
            });
          } catch (error) {
            answers.push({ client: i, input, startedAt, error: error as ServiceError });
          }
        }
        client.close();
      }),
    ).then(() => undefined);
  }

  /** Records `version`'s outputs, asked for through `model` (a pin keeps its version loaded). */
  async function reference(version: number, model: string): Promise<void> {
    for (const input of ['tensor', 'image'] as const) {
      const res = await classify(inference.client, {
        ...inputs[input],
        model,
        topK: TINY_LABELS.length,
      });
      expect(res.model?.version).toBe(version);
      expected.set(`${input}:${version}`, probabilities(res));
    }
  }

  /** Every answer is a success computed by the version it names (outputs match that version's). */
  function expectAllServedCorrectly(list: Answer[], versions: number[]): void {
    expect(list.filter((a) => a.error).map((a) => `${a.error?.code} ${a.error?.details}`)).toEqual([]);
    for (const a of list) {
      expect(versions).toContain(a.version);
      expect(a.sha256).toBe(shas.get(a.version ?? -1));
      const ref = expected.get(`${a.input}:${a.version}`) ?? [];
      expect(a.probabilities).toHaveLength(ref.length);
      a.probabilities?.forEach((p, k) => expect(p).toBeCloseTo(ref[k] ?? NaN, 4));
    }
  }

  const loadedVersions = async () => {
    const res = await new Promise<inferenceV1Client.ListModelsResponse>((resolve, reject) =>
      inference.client.listModels({}, (err, r) => (err ? reject(err) : resolve(r))),
    );
    return (res.models.find((m) => m.name === 'tiny')?.loaded ?? []).map((l) => l.version).sort();
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'deit-e2e-reload-'));
    registry = await DirectoryRegistry.open(dir, { create: true });
    const v1 = await publishTinyDeit(registry, 'tiny', { seed: 1 });
    shas.set(1, v1.manifest.files['model.onnx']?.sha256 ?? '');
    await registry.setAlias('tiny', 'production', 1);
    inputs = {
      tensor: { tensor: tinyTensor(0.7) },
      image: { image: await pngImage(30, 20, [250, 120, 10]) },
    };
    inference = await startInference(dir, {}, { metrics: true });
    await reference(1, 'tiny'); // not pinned, so that v1 can be unloaded later
  });

  afterAll(async () => {
    running = false;
    await load;
    await inference?.close();
  });

  it('moves production to a new version without losing a request; each answer names its version', async () => {
    load = startLoad();
    await sleep(300);
    const v2 = await publishTinyDeit(registry, 'tiny', { seed: 2 });
    shas.set(2, v2.manifest.files['model.onnx']?.sha256 ?? '');
    await sleep(300); // a new version alone takes no traffic while production names another
    const movedAt = Date.now();
    await registry.setAlias('tiny', 'production', 2); // v2 loads in the background, under load
    await sleep(SWITCH_WITHIN_MS + 800);
    running = false;
    await load;
    await reference(2, 'tiny:2');
    expect(expected.get('tensor:2')).not.toEqual(expected.get('tensor:1'));

    expect(answers.length).toBeGreaterThan(20);
    expectAllServedCorrectly(answers, [1, 2]);
    expect(answers.filter((a) => a.startedAt < movedAt).every((a) => a.version === 1)).toBe(true);
    expect(answers.filter((a) => a.startedAt >= movedAt + SWITCH_WITHIN_MS).length).toBeGreaterThan(0);
    expect(
      answers.filter((a) => a.startedAt >= movedAt + SWITCH_WITHIN_MS).every((a) => a.version === 2),
    ).toBe(true);
    // Per client the switch happens once: no v1 answer after a v2 answer.
    for (let c = 0; c < CLIENTS; c++) {
      const versions = answers.filter((a) => a.client === c).map((a) => a.version);
      expect(versions.slice(versions.indexOf(2))).not.toContain(1);
      expect(versions.at(-1)).toBe(2);
    }
    // v1 has no route left: it is unloaded once its last request finished.
    await waitFor('v1 to be unloaded', async () => !(await loadedVersions()).includes(1));
    const metrics = await scrape(inference.metricsUrl ?? '');
    expect(sample(metrics, 'deit_model_loaded', { model: 'tiny', version: '1' })).toBeUndefined();
    expect(sample(metrics, 'deit_model_loaded', { model: 'tiny', version: '2' })).toBe(1);
  });

  it('never routes traffic to a version that fails its self-check; the old version keeps serving', async () => {
    // Version 3: a sound ONNX file whose manifest expects outputs it does not produce.
    const request = await packageModel({
      spec: { architecture: 'deit', config: TINY_DEIT },
      preset: 'test_tiny',
      weights: randomWeights(deitOnnxWeightShapes(TINY_DEIT), 3),
      labels: TINY_LABELS,
      input: {
        image_size: 16,
        channels: 3,
        mean: [0.5, 0.5, 0.5],
        std: [0.25, 0.25, 0.25],
        interpolation: 'bicubic',
        crop_pct: 1,
      },
    });
    const check = request.self_check;
    if (!check) throw new Error('packageModel wrote no self-check');
    check.expected['cls_logits'] = encodeTensor([1, TINY_LABELS.length], new Float32Array([9, 9, 9, 9]));
    const v3 = await registry.publish('tiny', request);
    expect(v3.version).toBe(3);

    const failedLoads = async () =>
      sample(await scrape(inference.metricsUrl ?? ''), 'deit_model_loads_total', {
        model: 'tiny',
        outcome: 'failed',
      }) ?? 0;
    const failedBefore = await failedLoads();
    answers.length = 0;
    load = startLoad();
    await sleep(200);
    await registry.setAlias('tiny', 'production', 3);
    await waitFor('the load of v3 to fail', async () => (await failedLoads()) > failedBefore);
    await sleep(300);
    running = false;
    await load;

    expect(answers.length).toBeGreaterThan(5);
    expectAllServedCorrectly(answers, [2]);
    expect(await loadedVersions()).toEqual([2]);
    // Asked for by pin, it is refused with a status that says why.
    const pinned = await failure(inference.client, { ...inputs.tensor, model: 'tiny:3' });
    expect(pinned.code).toBe(status.DATA_LOSS);
    expect(pinned.details).toMatch(/tiny:3: self-check failed on cls_logits/);
  });

  it('refuses a version whose bytes changed on disk after publishing', async () => {
    const v4 = await publishTinyDeit(registry, 'tiny', { seed: 4 });
    const file = join(dir, 'tiny', String(v4.version), 'model.onnx');
    const bytes = readFileSync(file);
    bytes[bytes.length - 10] ^= 0xff; // same size, different content
    writeFileSync(file, bytes);

    const pinned = await failure(inference.client, { ...inputs.tensor, model: `tiny:${v4.version}` });
    expect(pinned.code).toBe(status.DATA_LOSS);
    expect(pinned.details).toMatch(/sha256/);
    // The registry will not point an alias at it either, and production keeps serving v2.
    await expect(registry.setAlias('tiny', 'production', v4.version)).rejects.toThrow(/sha256/);
    expect((await classify(inference.client, inputs.tensor)).model?.version).toBe(2);
  });
});
