import { credentials } from '@grpc/grpc-js';
import { maxAbsDiff } from '@deit-serve/core';
import { randomPixels } from '@deit-serve/model/testing';
import { oipClient } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { publishTinyDeit } from '@deit-serve/testing';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InferenceProcess, spawnInference } from './support';

/**
 * Many ModelInfer calls in flight on one connection, each with its own tensor, large enough (110 KB)
 * that the service frees every answered request's bytes at once (releaseReceivedBytes): each answer
 * must still be exactly the one its own tensor gets when sent alone, so freeing one request's message
 * never touches another's.
 */
const SIZE = 96;
const CALLS = 24;

describe('ModelInfer under concurrency, request bytes freed on answer', () => {
  let server: InferenceProcess;
  let client: oipClient.GRPCInferenceServiceClient;

  beforeAll(async () => {
    const registryDir = mkdtempSync(join(tmpdir(), 'deit-e2e-oip-concurrent-'));
    await publishTinyDeit(await DirectoryRegistry.open(registryDir, { create: true }), 'tiny', {
      seed: 5,
      config: { imgSize: SIZE, patchSize: 16 },
    });
    server = await spawnInference(registryDir, { DEIT_MAX_BATCH_SIZE: '4' });
    client = new oipClient.GRPCInferenceServiceClient(server.address, credentials.createInsecure());
  }, 120_000);

  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  const infer = (tensor: Float32Array): Promise<Float32Array> =>
    new Promise((resolve, reject) => {
      client.modelInfer(
        {
          modelName: 'tiny',
          modelVersion: '',
          id: '',
          parameters: {},
          inputs: [
            {
              name: 'pixel_values',
              datatype: 'FP32',
              shape: [1, 3, SIZE, SIZE],
              parameters: {},
              contents: undefined,
            },
          ],
          outputs: [{ name: 'cls_logits', parameters: {} }],
          rawInputContents: [new Uint8Array(tensor.buffer, tensor.byteOffset, tensor.byteLength)],
        },
        (error, response) => {
          if (error) return reject(error);
          const raw = response.rawOutputContents[0];
          resolve(new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)));
        },
      );
    });

  it(`answers ${CALLS} concurrent calls each as it answers that tensor alone`, async () => {
    const tensors = Array.from({ length: CALLS }, (_, i) => randomPixels(3 * SIZE * SIZE, 100 + i));
    const alone: Float32Array[] = [];
    for (const t of tensors) alone.push(await infer(t));
    const together = await Promise.all(tensors.map((t) => infer(t)));
    for (let i = 0; i < CALLS; i++) {
      expect(together[i].length).toBe(alone[i].length);
      expect(maxAbsDiff(together[i], alone[i]), `call ${i}`).toBeLessThan(1e-5);
    }
    // Distinct tensors give distinct answers, so a mixed-up answer could not pass the check above.
    expect(maxAbsDiff(alone[0], alone[1])).toBeGreaterThan(1e-3);
  }, 120_000);
});
