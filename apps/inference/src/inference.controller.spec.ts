import { EventEmitter } from 'node:events';
import type { ServerUnaryCall } from '@grpc/grpc-js';
import type { ClassificationService, ClassifyContext, ModelCatalog } from '@deit-serve/inference-engine';
import { inferenceV1 } from '@deit-serve/proto';
import { describe, expect, it } from 'vitest';
import { InferenceController } from './inference.controller';

/** A grpc-js server call as far as the controller looks: a deadline and the 'cancelled' event. */
function fakeCall(): EventEmitter & { getDeadline(): number } {
  return Object.assign(new EventEmitter(), { getDeadline: () => Infinity });
}

function controllerSeeing(contexts: ClassifyContext[], answer: Promise<void>): InferenceController {
  const classification = {
    classify: async (_request: inferenceV1.ClassifyRequest, context: ClassifyContext) => {
      contexts.push(context);
      await answer;
      return {} as inferenceV1.ClassifyResponse;
    },
  } as unknown as ClassificationService;
  return new InferenceController(classification, {} as ModelCatalog, 8);
}

const request = { model: '', head: inferenceV1.Head.HEAD_UNSPECIFIED, topK: 0 };

describe('InferenceController call context', () => {
  it('aborts the work of a call cancelled before its answer', async () => {
    const contexts: ClassifyContext[] = [];
    let answer!: () => void;
    const call = fakeCall();
    const pending = controllerSeeing(contexts, new Promise((r) => (answer = r))).classify(
      request,
      undefined,
      call as unknown as ServerUnaryCall<unknown, unknown>,
    );
    call.emit('cancelled');
    expect(contexts[0].signal?.aborted).toBe(true);
    answer();
    await pending;
  });

  it('leaves an answered call alone when grpc-js reports it cancelled as its stream closes', async () => {
    const contexts: ClassifyContext[] = [];
    const call = fakeCall();
    await controllerSeeing(contexts, Promise.resolve()).classify(
      request,
      undefined,
      call as unknown as ServerUnaryCall<unknown, unknown>,
    );
    expect(call.listenerCount('cancelled')).toBe(0);
    call.emit('cancelled');
    expect(contexts[0].signal?.aborted).toBe(false);
  });
});
