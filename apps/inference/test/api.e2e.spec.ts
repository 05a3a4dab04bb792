import { Metadata, status } from '@grpc/grpc-js';
import { inferenceV1, inferenceV1Client } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { publishTinyDeit, TINY_LABELS } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  classify,
  failure,
  type Inference,
  pngBomb,
  pngImage,
  sample,
  scrape,
  startInference,
  tinyTensor,
} from './support';

const { Head } = inferenceV1;

/**
 * The API surface on one server: streams, input limits, head preconditions, the catalogue, pins and
 * the metrics endpoint. Registry: `tiny` v1 (production) and v2 (unaliased), `plain` (no DIST head).
 */
describe('inference API end to end', () => {
  let inference: Inference;
  let shas: Record<string, string>;
  let pngImage8: Buffer;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deit-e2e-api-'));
    const registry = await DirectoryRegistry.open(dir, { create: true });
    const v1 = await publishTinyDeit(registry, 'tiny', { seed: 1 });
    const v2 = await publishTinyDeit(registry, 'tiny', { seed: 2 });
    const plain = await publishTinyDeit(registry, 'plain', { seed: 3, config: { distilled: false } });
    await registry.setAlias('tiny', 'production', 1);
    shas = Object.fromEntries(
      [v1, v2, plain].map((v) => [`${v.model}:${v.version}`, v.manifest.files['model.onnx']?.sha256 ?? '']),
    );
    pngImage8 = await pngImage(8, 8, [5, 6, 7]);
    inference = await startInference(dir, {}, { metrics: true });
  });

  afterAll(() => inference?.close());

  describe('ClassifyStream', () => {
    type Outcome = { response?: inferenceV1Client.ClassifyResponse; error?: inferenceV1Client.ItemError };

    /** Writes `items` (pausing `gapMs` between writes), ends, and collects the answers by id. */
    async function stream(
      items: { id: string; request: Partial<inferenceV1Client.ClassifyRequest> }[],
      gapMs = 0,
    ): Promise<{ answers: Map<string, Outcome>; order: string[] }> {
      const call = inference.client.classifyStream(new Metadata());
      const answers = new Map<string, Outcome>();
      const order: string[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on('data', (res: inferenceV1Client.ClassifyStreamResponse) => {
          expect(answers.has(res.id), `id ${res.id} answered twice`).toBe(false);
          answers.set(res.id, {
            ...(res.response ? { response: res.response } : {}),
            ...(res.error ? { error: res.error } : {}),
          });
          order.push(res.id);
        });
        call.on('error', reject);
        call.on('end', resolve);
      });
      for (const item of items) {
        call.write(
          inferenceV1Client.ClassifyStreamRequest.fromPartial({
            id: item.id,
            request: inferenceV1Client.ClassifyRequest.fromPartial(item.request),
          }),
        );
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
      call.end();
      await done;
      return { answers, order };
    }

    it('answers every item under its own id, a bad item with its error, and goes on', async () => {
      const red = await pngImage(20, 12, [220, 20, 20]);
      const items = [
        { id: 'bad-bytes', request: { image: Buffer.from('definitely not an image') } },
        ...Array.from({ length: 6 }, (_, i) => ({
          id: `t${i}`,
          request: { tensor: tinyTensor(i / 10), head: Head.HEAD_CLS, topK: 2 },
        })),
        { id: 'img', request: { image: red, head: Head.HEAD_DIST } },
        { id: 'unknown-model', request: { model: 'nope', tensor: tinyTensor(0) } },
        { id: 'no-dist-head', request: { model: 'plain', tensor: tinyTensor(0), head: Head.HEAD_DIST } },
        { id: 'pinned', request: { model: 'tiny:2', tensor: tinyTensor(0.5) } },
        { id: 'last', request: { tensor: tinyTensor(-1) } },
      ];
      const { answers } = await stream(items);

      expect([...answers.keys()].sort()).toEqual(items.map((i) => i.id).sort());
      expect(answers.get('bad-bytes')?.error?.code).toBe(status.INVALID_ARGUMENT);
      expect(answers.get('bad-bytes')?.error?.message).toMatch(/unrecognised image format/);
      expect(answers.get('unknown-model')?.error?.code).toBe(status.NOT_FOUND);
      expect(answers.get('no-dist-head')?.error?.code).toBe(status.FAILED_PRECONDITION);
      for (let i = 0; i < 6; i++) {
        const res = answers.get(`t${i}`)?.response;
        expect(res?.model).toMatchObject({ name: 'tiny', version: 1 });
        expect(res?.head).toBe(Head.HEAD_CLS);
        expect(res?.predictions).toHaveLength(2);
      }
      expect(answers.get('img')?.response?.head).toBe(Head.HEAD_DIST);
      expect(answers.get('pinned')?.response?.model).toMatchObject({ name: 'tiny', version: 2 });
      expect(answers.get('last')?.response?.predictions).toHaveLength(TINY_LABELS.length);
      // Each id's answer is the one computed for its own input, not a neighbour's.
      const single = await classify(inference.client, {
        tensor: tinyTensor(0.3),
        head: Head.HEAD_CLS,
        topK: 2,
      });
      expect(answers.get('t3')?.response?.predictions).toEqual(single.predictions);
    });

    it('keeps answering items written after a failed one', async () => {
      const items = ['a', 'b', 'c', 'd'].map((id, i) => ({
        id,
        request: i === 1 ? { image: Buffer.alloc(0) } : { tensor: tinyTensor(i) },
      }));
      const { answers } = await stream(items, 20);
      expect(answers.get('b')?.error?.code).toBe(status.INVALID_ARGUMENT);
      for (const id of ['a', 'c', 'd']) expect(answers.get(id)?.response?.model?.version).toBe(1);
    });

    it('ends cleanly when the client writes nothing', async () => {
      expect((await stream([])).answers.size).toBe(0);
    });
  });

  describe('input limits', () => {
    it('refuses a decompression bomb from its header, before decoding, with INVALID_ARGUMENT', async () => {
      const bomb = await pngBomb(100_000, 100_000);
      expect(bomb.length).toBeLessThan(1024);
      const err = await failure(inference.client, { image: bomb });
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/100000×100000 = 10,000,000,000 pixels, above the limit of 40,000,000/);
    });

    it('refuses truncated and corrupt images with INVALID_ARGUMENT naming the problem', async () => {
      const png = await pngImage(64, 64, [1, 2, 3]);
      const truncated = await failure(inference.client, { image: png.subarray(0, png.length - 30) });
      expect(truncated.code).toBe(status.INVALID_ARGUMENT);
      expect(truncated.details).toMatch(/PNG/);

      const corrupt = Buffer.from(png);
      for (let i = 60; i < corrupt.length - 20; i++) corrupt[i] ^= 0x5a; // scramble the pixel data
      expect((await failure(inference.client, { image: corrupt })).code).toBe(status.INVALID_ARGUMENT);

      const headerOnly = png.subarray(0, 20);
      const header = await failure(inference.client, { image: headerOnly });
      expect(header.code).toBe(status.INVALID_ARGUMENT);
      expect(header.details).toMatch(/PNG header is truncated or corrupt/);

      // Still serving afterwards.
      expect((await classify(inference.client, { image: png })).model?.version).toBe(1);
    });

    it('refuses a tensor holding NaN or ±Infinity anywhere, with INVALID_ARGUMENT', async () => {
      const item = 3 * 16 * 16;
      for (const [at, bad] of [
        [0, Number.NaN],
        [item - 1, Number.POSITIVE_INFINITY],
        [item >> 1, Number.NEGATIVE_INFINITY],
      ] as const) {
        const values = new Float32Array(item).fill(0.25);
        values[at] = bad;
        const err = await failure(inference.client, {
          tensor: { shape: [1, 3, 16, 16], data: new Uint8Array(values.buffer) },
        });
        expect(err.code, `${bad} at ${at}`).toBe(status.INVALID_ARGUMENT);
        expect(err.details).toMatch(/tensor contains NaN or infinite values/);
      }
      // The largest finite float32 is a value, not an error.
      const big = new Float32Array(item).fill(3.4028234663852886e38);
      expect(
        (
          await classify(inference.client, {
            tensor: { shape: [1, 3, 16, 16], data: new Uint8Array(big.buffer) },
          })
        ).model?.version,
      ).toBe(1);
    });

    it('refuses an unknown head value with INVALID_ARGUMENT', async () => {
      const err = await failure(inference.client, {
        tensor: tinyTensor(0),
        head: 7 as inferenceV1Client.Head,
      });
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/HEAD_CLS, HEAD_DIST or HEAD_AVERAGE/);
    });

    it('answers DEADLINE_EXCEEDED to a call whose deadline is too short, and keeps serving', async () => {
      const errors = await Promise.all(
        Array.from({ length: 8 }, () =>
          failure(inference.client, { image: pngImage8 }, { deadline: Date.now() + 1 }),
        ),
      );
      for (const err of errors) expect(err.code).toBe(status.DEADLINE_EXCEEDED);
      expect((await classify(inference.client, { image: pngImage8 })).model?.version).toBe(1);
    });
  });

  it('answers HEAD_DIST on a model without a distillation head with FAILED_PRECONDITION', async () => {
    const err = await failure(inference.client, {
      model: 'plain',
      tensor: tinyTensor(0),
      head: Head.HEAD_DIST,
    });
    expect(err.code).toBe(status.FAILED_PRECONDITION);
    expect(err.details).toBe('plain:1 has no distillation head; use HEAD_CLS or HEAD_AVERAGE');
    // The other heads work, and the disagreement is reported as unavailable.
    for (const head of [Head.HEAD_CLS, Head.HEAD_AVERAGE, Head.HEAD_UNSPECIFIED]) {
      const res = await classify(inference.client, { model: 'plain', tensor: tinyTensor(0), head });
      expect(res.model).toMatchObject({ name: 'plain', version: 1, sha256: shas['plain:1'] });
      expect(res.disagreement?.available).toBe(false);
    }
  });

  it('serves name:version pins, aliases and bare names to the version they name', async () => {
    const image = await pngImage(24, 24, [90, 160, 30]);
    const cases: [string, number, string][] = [
      ['', 1, 'production'],
      ['tiny', 1, 'production'],
      ['tiny@production', 1, 'production'],
      ['tiny:1', 1, ''],
      ['tiny:2', 2, ''],
    ];
    const answers = await Promise.all(cases.map(([model]) => classify(inference.client, { model, image })));
    for (const [i, [, version, alias]] of cases.entries()) {
      expect(answers[i]?.model).toEqual({ name: 'tiny', version, alias, sha256: shas[`tiny:${version}`] });
    }
    expect(answers[4]?.predictions).not.toEqual(answers[3]?.predictions);
    expect((await failure(inference.client, { model: 'tiny:9', image })).code).toBe(status.NOT_FOUND);
    expect((await failure(inference.client, { model: 'tiny@staging', image })).code).toBe(status.NOT_FOUND);
  });

  it('lists models with versions, aliases and what is loaded', async () => {
    await classify(inference.client, { model: 'tiny:2', tensor: tinyTensor(0) });
    const res = await new Promise<inferenceV1Client.ListModelsResponse>((resolve, reject) =>
      inference.client.listModels({}, (err, r) => (err ? reject(err) : resolve(r))),
    );
    const tiny = res.models.find((m) => m.name === 'tiny');
    expect(res.models.map((m) => m.name)).toEqual(['plain', 'tiny']);
    expect(tiny?.versions).toEqual([1, 2]);
    expect(tiny?.aliases).toEqual({ production: 1 });
    const loaded = [...(tiny?.loaded ?? [])].sort((a, b) => a.version - b.version);
    expect(loaded.map((l) => [l.version, l.sha256])).toEqual([
      [1, shas['tiny:1']],
      [2, shas['tiny:2']],
    ]);
    expect(loaded[0]?.aliases).toContain('production');
    expect(loaded[0]?.loadedAt?.getTime()).toBeLessThanOrEqual(Date.now());
  });

  it('describes a model version: input spec, heads, labels, lineage', async () => {
    const get = (model: string) =>
      new Promise<inferenceV1Client.GetModelResponse>((resolve, reject) =>
        inference.client.getModel({ model }, (err, r) => (err ? reject(err) : resolve(r))),
      );
    const res = await get('tiny');
    expect(res.model).toEqual({ name: 'tiny', version: 1, sha256: shas['tiny:1'], alias: 'production' });
    expect(res.architecture).toBe('deit');
    expect(res.preset).toBe('test_tiny');
    expect(res.input).toMatchObject({ imageSize: 16, channels: 3, interpolation: 'bicubic', cropPct: 1 });
    expect(res.input?.mean).toEqual([0.5, 0.5, 0.5]);
    expect(res.clsOutput).toBe('cls_logits');
    expect(res.distOutput).toBe('dist_logits');
    expect(res.labels).toEqual(TINY_LABELS);
    expect(JSON.parse(res.lineage?.hyperparametersJson ?? '{}')).toMatchObject({ seed: 1 });
    expect(res.createdAt?.getTime()).toBeGreaterThan(0);

    expect((await get('tiny:2')).model?.version).toBe(2);
    expect((await get('plain')).distOutput).toBe('');
    const missing = await get('nope').catch((e: { code: number }) => e);
    expect(missing).toMatchObject({ code: status.NOT_FOUND });
  });

  it('exposes Prometheus metrics: requests by method and code, latency, batches, heads, versions, memory', async () => {
    await classify(inference.client, { tensor: tinyTensor(0.1) });
    await failure(inference.client, { image: Buffer.from('x') });
    const text = await scrape(inference.metricsUrl ?? '');

    expect(sample(text, 'deit_requests_total', { method: 'Classify', code: 'OK' })).toBeGreaterThan(0);
    expect(
      sample(text, 'deit_requests_total', { method: 'Classify', code: 'INVALID_ARGUMENT' }),
    ).toBeGreaterThan(0);
    expect(sample(text, 'deit_requests_total', { method: 'ClassifyStream', code: 'OK' })).toBeGreaterThan(0);
    expect(
      sample(text, 'deit_requests_total', { method: 'ClassifyStream', code: 'NOT_FOUND' }),
    ).toBeGreaterThan(0);
    expect(sample(text, 'deit_request_duration_seconds_count', { method: 'Classify' })).toBeGreaterThan(0);
    for (const name of ['queue', 'compute', 'preprocess']) {
      expect(
        sample(text, `deit_request_${name}_seconds_count`, { model: 'tiny', version: '1' }),
      ).toBeGreaterThan(0);
      expect(
        sample(text, `deit_request_${name}_seconds_bucket`, { model: 'tiny', version: '1', le: '+Inf' }),
      ).toBeGreaterThan(0);
    }
    expect(sample(text, 'deit_batch_size_count', { model: 'tiny', version: '1' })).toBeGreaterThan(0);
    expect(sample(text, 'deit_head_disagreement_kl_count', { model: 'tiny', version: '1' })).toBeGreaterThan(
      0,
    );
    expect(sample(text, 'deit_model_loaded', { model: 'tiny', version: '1' })).toBe(1);
    expect(sample(text, 'deit_model_loads_total', { model: 'tiny', outcome: 'ok' })).toBeGreaterThan(0);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(10 * 1024 * 1024);
    expect(text).toMatch(/# TYPE deit_request_compute_seconds histogram/);

    expect((await fetch((inference.metricsUrl ?? '').replace('/metrics', '/nope'))).status).toBe(404);
  });
});
