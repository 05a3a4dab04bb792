import type { OipService } from '@deit-serve/oip';
import type { oip } from '@deit-serve/proto';
import { describe, expect, it } from 'vitest';
import { OipController } from './oip.controller';

/** A request as grpc-js hands it over: its raw tensor bytes a view to the end of the message's own buffer. */
function receivedRequest(tensorBytes: number): { request: oip.ModelInferRequest; message: Buffer } {
  const header = 40;
  const message = Buffer.alloc(header + tensorBytes, 7);
  const raw = message.subarray(header);
  const request = {
    modelName: 'm',
    modelVersion: '',
    id: '',
    parameters: {},
    inputs: [],
    outputs: [],
    rawInputContents: [raw],
  } as oip.ModelInferRequest;
  return { request, message };
}

function controller(answer: () => Promise<oip.ModelInferResponse>): OipController {
  const service = { modelInfer: answer } as unknown as OipService;
  return new OipController(service, 4);
}

const RESPONSE = { modelName: 'm' } as oip.ModelInferResponse;

describe('OipController.modelInfer', () => {
  it("frees an answered request's tensor bytes at once", async () => {
    const { request, message } = receivedRequest(3 * 96 * 96 * 4);
    const [raw] = request.rawInputContents;
    await expect(controller(() => Promise.resolve(RESPONSE)).modelInfer(request)).resolves.toBe(RESPONSE);
    expect(raw.byteLength).toBe(0);
    expect(message.buffer.byteLength).toBe(0);
  });

  it('leaves them alone when the call failed (items may still be queued) or the bytes are small', async () => {
    const failed = receivedRequest(3 * 96 * 96 * 4);
    await expect(
      controller(() => Promise.reject(new Error('queue full'))).modelInfer(failed.request),
    ).rejects.toThrow('queue full');
    expect(failed.request.rawInputContents[0].byteLength).toBe(3 * 96 * 96 * 4);

    // Under 64 KiB a Buffer may be a view into memory other requests share (an HTTP/2 read, the pool).
    const small = receivedRequest(3 * 32 * 32 * 4);
    await controller(() => Promise.resolve(RESPONSE)).modelInfer(small.request);
    expect(small.request.rawInputContents[0].byteLength).toBe(3 * 32 * 32 * 4);
  });
});
