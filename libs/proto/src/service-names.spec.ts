import { describe, expect, it } from 'vitest';
import { InferenceServiceService } from './generated/grpc-js/deit/inference/v1/inference';
import { TrainerServiceService } from './generated/grpc-js/deit/trainer/v1/trainer';
import { HealthService } from './generated/grpc-js/grpc/health/v1/health';
import { GRPCInferenceServiceService } from './generated/grpc-js/grpc_service';
import { servicesIn } from './descriptors';
import { PROTO_PACKAGES, SERVICE_NAMES } from './service-names';

describe('SERVICE_NAMES', () => {
  it('names each service as the compiled descriptors do', () => {
    for (const key of Object.keys(SERVICE_NAMES) as (keyof typeof SERVICE_NAMES)[]) {
      expect(servicesIn([PROTO_PACKAGES[key]])).toContain(SERVICE_NAMES[key]);
    }
    expect(SERVICE_NAMES.inference).toBe('deit.inference.v1.InferenceService');
  });

  it('is the prefix of every method path of the generated clients', () => {
    const clients = {
      inference: InferenceServiceService,
      trainer: TrainerServiceService,
      health: HealthService,
      oip: GRPCInferenceServiceService,
    } satisfies Record<keyof typeof SERVICE_NAMES, object>;
    for (const [key, service] of Object.entries(clients)) {
      const paths = Object.values(service).map((m: { path: string }) => m.path);
      expect(paths.length).toBeGreaterThan(0);
      for (const path of paths)
        expect(path.startsWith(`/${SERVICE_NAMES[key as keyof typeof SERVICE_NAMES]}/`), path).toBe(true);
    }
  });
});
