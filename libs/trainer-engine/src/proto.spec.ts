import { InvalidArgumentError } from '@deit-serve/core';
import { trainerV1 } from '@deit-serve/proto';
import { describe, expect, it } from 'vitest';
import { JOB_STATES, type FineTuneResult, type JobRecord } from './job';
import { fromProtoJobState, toProtoEvent, toProtoEvents, toProtoJob, toProtoJobState } from './proto';
import { validateFineTuneSpec, type FineTuneJobSpec } from './spec';

const spec = validateFineTuneSpec({
  outputModel: 'fmnist-deit',
  student: { preset: 'deit_pico_distilled_patch4_28' },
  teacher: { onnxPath: '/t.onnx' },
  dataset: {
    fashionMnist: { dir: '', evalOnTest: true },
    validationFraction: 0,
    maxTrainImages: 0,
    maxEvalImages: 0,
  },
  distillation: undefined,
  optimization: { epochs: 1, batchSize: 32, lrFixed: false, warmupEpochs: 0 },
  augmentation: undefined,
  seed: 1,
  trainable: undefined,
  evalIntervalEpochs: 0,
  promotion: undefined,
});

describe('proto mapping', () => {
  it('maps every state both ways and rejects UNSPECIFIED filters', () => {
    for (const state of JOB_STATES) expect(fromProtoJobState(toProtoJobState(state))).toBe(state);
    expect(() => fromProtoJobState(trainerV1.JobState.JOB_STATE_UNSPECIFIED)).toThrow(InvalidArgumentError);
  });

  it('maps a job with its explicit spec, progress and result', () => {
    const created = new Date(1000);
    const job: JobRecord<FineTuneJobSpec, FineTuneResult> = {
      id: 'j1',
      kind: 'fine-tune',
      spec,
      state: 'SUCCEEDED',
      createdAt: created,
      startedAt: created,
      finishedAt: created,
      updatedAt: created,
      progress: { epoch: 1, epochs: 1, step: 2, stepsPerEpoch: 2 },
      result: {
        model: 'fmnist-deit',
        version: 4,
        sha256: 'ab',
        promoted: true,
        promotionReason: 'first version',
      },
      resumes: 1,
      attempts: 2,
      retries: 0,
      backend: 'wasm',
    };
    const proto = toProtoJob(job);
    expect(proto).toMatchObject({
      id: 'j1',
      state: trainerV1.JobState.JOB_STATE_SUCCEEDED,
      error: '',
      resumes: 1,
      backend: 'wasm',
      progress: { epoch: 1, step: 2, learningRate: 0, loss: undefined },
      result: { version: 4, promoted: true, finalEval: undefined },
    });
    expect(proto.spec?.distillation?.type).toBe(trainerV1.DistillationType.DISTILLATION_TYPE_HARD);
    expect(proto.spec?.dataset?.fashionMnist).toEqual({
      dir: '/usr/share/datasets/fashion-mnist',
      evalOnTest: true,
    });
  });

  it('sends the error of a state event as a message just before the state, which has no field for it', () => {
    const time = new Date(5);
    const error =
      'invalid fine-tune spec (1 problem): dataset: would load 14 images, more than the 12 allowed';
    expect(
      toProtoEvents({ jobId: 'j', seq: 4, time, body: { type: 'state', state: 'FAILED', error } }),
    ).toEqual([
      { jobId: 'j', time, message: `failed: ${error}` },
      { jobId: 'j', time, state: trainerV1.JobState.JOB_STATE_FAILED },
    ]);
    expect(toProtoEvents({ jobId: 'j', seq: 5, time, body: { type: 'state', state: 'RUNNING' } })).toEqual([
      { jobId: 'j', time, state: trainerV1.JobState.JOB_STATE_RUNNING },
    ]);
  });

  it('maps each kind of event into the oneof', () => {
    const time = new Date(5);
    const event = (body: Parameters<typeof toProtoEvent>[0]['body']) =>
      toProtoEvent({ jobId: 'j', seq: 1, time, body });
    expect(event({ type: 'state', state: 'RUNNING' })).toEqual({
      jobId: 'j',
      time,
      state: trainerV1.JobState.JOB_STATE_RUNNING,
    });
    expect(event({ type: 'message', message: 'hi' })).toEqual({ jobId: 'j', time, message: 'hi' });
    expect(
      event({ type: 'eval', eval: { epoch: 1, dataset: 'val', images: 3, cls: { top1: 0.5, top5: 1 } } })
        .eval,
    ).toMatchObject({
      cls: { top1: 0.5, top5: 1 },
      dist: undefined,
      teacherTop1: 0,
    });
    expect(
      event({ type: 'progress', progress: { epoch: 1, epochs: 2, step: 0, stepsPerEpoch: 5 } }).progress
        ?.etaSeconds,
    ).toBe(0);
  });
});
