/**
 * The product's gRPC contracts, generated from proto/ by ts-proto (never edited by hand).
 * `*V1` namespaces hold the message types and the NestJS controller interfaces and decorators;
 * `*V1Client` namespaces hold typed @grpc/grpc-js clients with binary codecs.
 */
export * as inferenceV1 from './generated/nest/deit/inference/v1/inference';
export * as trainerV1 from './generated/nest/deit/trainer/v1/trainer';
export * as healthV1 from './generated/nest/grpc/health/v1/health';
export * as inferenceV1Client from './generated/grpc-js/deit/inference/v1/inference';
export * as trainerV1Client from './generated/grpc-js/deit/trainer/v1/trainer';
export * as healthV1Client from './generated/grpc-js/grpc/health/v1/health';
/** The Open Inference Protocol (KServe v2 / Triton, package `inference`; proto/third_party/oip). */
export * as oip from './generated/nest/grpc_service';
export * as oipConfig from './generated/nest/model_config';
export * as oipClient from './generated/grpc-js/grpc_service';
export {
  DESCRIPTOR_SET_FILE,
  fileDescriptorProtos,
  reflectionPackageDefinition,
  servicesIn,
} from './descriptors';
export { loadPackageDefinition, UndecodableRequest } from './package-definition';
export { GRPC_LOADER_OPTIONS, PROTO_FILES, grpcLoaderOptions, protoRoot } from './proto-files';
export { PROTO_PACKAGES, SERVICE_NAMES } from './service-names';
