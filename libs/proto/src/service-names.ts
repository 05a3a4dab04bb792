import * as inference from './generated/nest/deit/inference/v1/inference';
import * as trainer from './generated/nest/deit/trainer/v1/trainer';
import * as health from './generated/nest/grpc/health/v1/health';
import * as oip from './generated/nest/grpc_service';

/**
 * Proto packages and fully qualified service names (`package.Service`, as grpc.health.v1 and server
 * reflection name a service; a method's path is `/<service>/<Method>`), built from the constants
 * ts-proto generates from the .proto files.
 */
export const PROTO_PACKAGES = {
  inference: inference.DEIT_INFERENCE_V1_PACKAGE_NAME,
  trainer: trainer.DEIT_TRAINER_V1_PACKAGE_NAME,
  health: health.GRPC_HEALTH_V1_PACKAGE_NAME,
  oip: oip.INFERENCE_PACKAGE_NAME,
} as const;

export const SERVICE_NAMES = {
  inference: `${PROTO_PACKAGES.inference}.${inference.INFERENCE_SERVICE_NAME}`,
  trainer: `${PROTO_PACKAGES.trainer}.${trainer.TRAINER_SERVICE_NAME}`,
  health: `${PROTO_PACKAGES.health}.${health.HEALTH_SERVICE_NAME}`,
  oip: `${PROTO_PACKAGES.oip}.${oip.GRPC_INFERENCE_SERVICE_NAME}`,
} as const;
