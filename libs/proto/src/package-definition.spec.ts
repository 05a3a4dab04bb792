import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  inferenceV1,
  inferenceV1Client,
  loadPackageDefinition,
  SERVICE_NAMES,
  trainerV1,
  trainerV1Client,
} from './index';

function method(service: string, name: string): MethodDefinition<unknown, unknown> {
  const def = loadPackageDefinition(['inference', 'trainer', 'health'])[service] as ServiceDefinition;
  const m = def[name];
  if (!m) throw new Error(`no method ${service}/${name}`);
  return m;
}

describe('loadPackageDefinition', () => {
  it('decodes requests into exactly the generated types (absent messages undefined, enums numeric)', () => {
    const classify = method(SERVICE_NAMES.inference, 'Classify');
    const wire = Buffer.from(
      inferenceV1Client.ClassifyRequest.encode(
        inferenceV1Client.ClassifyRequest.fromPartial({
          model: 'fmnist@production',
          image: new Uint8Array([1, 2, 3]),
          head: inferenceV1.Head.HEAD_DIST,
          topK: 3,
        }),
      ).finish(),
    );
    const decoded = classify.requestDeserialize(wire) as inferenceV1.ClassifyRequest;
    // bytes arrive as a Buffer, a Uint8Array subclass
    expect({ ...decoded, image: decoded.image && new Uint8Array(decoded.image) }).toEqual({
      model: 'fmnist@production',
      image: new Uint8Array([1, 2, 3]),
      tensor: undefined,
      head: inferenceV1.Head.HEAD_DIST,
      topK: 3,
    });
  });

  it('keeps proto3 optional fields unset and Timestamps as Date', () => {
    const start = method(SERVICE_NAMES.trainer, 'StartFineTune');
    const wire = Buffer.from(
      trainerV1Client.StartFineTuneRequest.encode(
        trainerV1Client.StartFineTuneRequest.fromPartial({
          spec: {
            outputModel: 'm',
            distillation: { type: trainerV1.DistillationType.DISTILLATION_TYPE_HARD },
          },
        }),
      ).finish(),
    );
    const decoded = start.requestDeserialize(wire) as trainerV1.StartFineTuneRequest;
    expect(decoded.spec?.distillation?.alpha).toBeUndefined();
    expect(decoded.spec?.distillation?.type).toBe(trainerV1.DistillationType.DISTILLATION_TYPE_HARD);
    expect(decoded.spec?.student).toBeUndefined();

    const get = method(SERVICE_NAMES.trainer, 'GetJob');
    const created = new Date('2026-01-02T03:04:05.678Z');
    const job: trainerV1.GetJobResponse = {
      job: trainerV1Client.Job.fromPartial({
        id: 'j1',
        state: trainerV1.JobState.JOB_STATE_RUNNING,
        createdAt: created,
      }),
    };
    const roundTrip = get.responseDeserialize(get.responseSerialize(job)) as trainerV1.GetJobResponse;
    expect(roundTrip.job?.createdAt).toEqual(created);
    expect(roundTrip.job?.state).toBe(trainerV1.JobState.JOB_STATE_RUNNING);
  });

  it('covers every method of every service the proto files declare', () => {
    const def = loadPackageDefinition(['inference', 'trainer', 'health']);
    const paths = Object.values(def)
      .filter((e) => !('format' in e))
      .flatMap((s) => Object.values(s as ServiceDefinition).map((m) => m.path));
    expect(paths).toContain('/deit.inference.v1.InferenceService/ClassifyStream');
    expect(paths).toContain('/deit.trainer.v1.TrainerService/WatchJob');
    expect(paths).toContain('/grpc.health.v1.Health/Watch');
    // reflection reads the file descriptors proto-loader keeps
    expect(Object.values(def).some((e) => 'format' in e)).toBe(true);
  });
});
