import 'reflect-metadata';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { inferenceConfigSpec, loadConfig } from '@deit-serve/config';
import { healthV1, inferenceV1, inferenceV1Client, PROTO_PACKAGES } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { healthCheck, publishTinyDeit, startTestService, type TestService } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppModule } from '../src/app.module';

const { Head } = inferenceV1;

async function pngImage(width: number, height: number, rgb: [number, number, number]): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } })
    .png()
    .toBuffer();
}

describe('inference service end to end', () => {
  let service: TestService;
  let client: inferenceV1Client.InferenceServiceClient;
  let registryDir: string;

  const classify = (request: Partial<inferenceV1Client.ClassifyRequest>) =>
    new Promise<inferenceV1Client.ClassifyResponse>((resolve, reject) =>
      client.classify(inferenceV1Client.ClassifyRequest.fromPartial(request), new Metadata(), (err, res) =>
        err ? reject(err) : resolve(res),
      ),
    );
  const failure = (request: Partial<inferenceV1Client.ClassifyRequest>) =>
    classify(request).then(
      () => {
        throw new Error('expected the call to fail');
      },
      (error: ServiceError) => error,
    );

  beforeAll(async () => {
    registryDir = mkdtempSync(join(tmpdir(), 'deit-e2e-'));
    const registry = await DirectoryRegistry.open(registryDir, { create: true });
    await publishTinyDeit(registry, 'tiny', { seed: 1 });
    await registry.setAlias('tiny', 'production', 1);
    service = await startTestService(
      (port) =>
        AppModule.register(
          loadConfig(inferenceConfigSpec, {
            DEIT_GRPC_PORT: String(port),
            DEIT_METRICS_PORT: '0',
            DEIT_REGISTRY_DIR: registryDir,
            DEIT_DEFAULT_MODEL: 'tiny',
            DEIT_REGISTRY_WATCH: 'poll',
            DEIT_REGISTRY_POLL_MS: '100',
          }),
        ),
      { protoFiles: ['inference'], packages: [PROTO_PACKAGES.inference] },
    );
    client = new inferenceV1Client.InferenceServiceClient(service.address, credentials.createInsecure());
  });

  afterAll(async () => {
    client.close();
    await service.close();
  });

  it('is SERVING once the default model is loaded', async () => {
    expect((await healthCheck(service.address)).status).toBe(
      healthV1.HealthCheckResponse_ServingStatus.SERVING,
    );
  });

  it('classifies an image with each head and names the exact version', async () => {
    const image = await pngImage(40, 30, [200, 30, 90]);
    const answers = await Promise.all(
      [Head.HEAD_CLS, Head.HEAD_DIST, Head.HEAD_AVERAGE].map((head) => classify({ image, head, topK: 3 })),
    );
    for (const [i, res] of answers.entries()) {
      expect(res.model).toMatchObject({ name: 'tiny', version: 1, alias: 'production' });
      expect(res.model?.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(res.head).toBe([Head.HEAD_CLS, Head.HEAD_DIST, Head.HEAD_AVERAGE][i]);
      expect(res.predictions).toHaveLength(3);
      expect(res.disagreement?.available).toBe(true);
      expect(res.timing?.batchSize).toBeGreaterThanOrEqual(1);
    }
    // The average head's logits are the mean of the other two heads' logits, class by class.
    const logit = (res: inferenceV1Client.ClassifyResponse, index: number) =>
      res.predictions.find((p) => p.index === index)?.logit;
    const top = answers[2].predictions[0].index;
    const cls = logit(answers[0], top);
    const dist = logit(answers[1], top);
    if (cls !== undefined && dist !== undefined)
      expect(logit(answers[2], top)).toBeCloseTo((cls + dist) / 2, 4);
  });

  it('defaults to the average head and top-5 capped at the class count', async () => {
    const res = await classify({ image: await pngImage(16, 16, [0, 0, 0]) });
    expect(res.head).toBe(Head.HEAD_AVERAGE);
    expect(res.predictions).toHaveLength(4);
  });

  it('accepts a preprocessed tensor and refuses a mis-shaped one', async () => {
    const data = new Float32Array(3 * 16 * 16).fill(0.25);
    const res = await classify({ tensor: { shape: [1, 3, 16, 16], data: new Uint8Array(data.buffer) } });
    expect(res.predictions.length).toBeGreaterThan(0);
    const err = await failure({ tensor: { shape: [3, 8, 8], data: new Uint8Array(3 * 8 * 8 * 4) } });
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/does not match tiny:1's input \[3, 16, 16\]/);
  });

  it('answers bad input with INVALID_ARGUMENT and unknown models with NOT_FOUND', async () => {
    expect((await failure({ image: Buffer.from('not an image') })).code).toBe(status.INVALID_ARGUMENT);
    expect((await failure({})).code).toBe(status.INVALID_ARGUMENT);
    const unknown = await failure({ model: 'nope', image: await pngImage(8, 8, [1, 2, 3]) });
    expect(unknown.code).toBe(status.NOT_FOUND);
    expect((await failure({ model: 'bad name!', image: await pngImage(8, 8, [1, 2, 3]) })).code).toBe(
      status.INVALID_ARGUMENT,
    );
  });
});
