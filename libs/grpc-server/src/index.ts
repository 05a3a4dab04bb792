export { createGrpcMicroservice, HealthModule, logLevelsUpTo, type GrpcServiceOptions } from './bootstrap';
export { GrpcExceptionFilter, toGrpcError, type GrpcError } from './errors';
export { HealthController, HealthStatus } from './health';
export { freePort } from './ports';
