export {
  type AccessRules,
  callerOf,
  exposeRepeatedAuthorization,
  hasRole,
  methodRoles,
  requirementOf,
  TokenAuthenticator,
} from './auth';
export { createGrpcMicroservice, logLevelsUpTo, securityOptions, type GrpcServiceOptions } from './bootstrap';
export { refusalInterceptors, type RefusalListener } from './refusals';
export { GrpcExceptionFilter, toGrpcError, type GrpcError } from './errors';
export { applyFlowControlWindow, MAX_FLOW_CONTROL_WINDOW } from './flow-control';
export { applyHeapGrowth } from './heap-growth';
export { HealthController, HealthModule, HealthPortModule, HealthStatus } from './health';
export { freePort } from './ports';
export { releaseDecodedReads } from './decoder-reads';
export { messageBufferOf, releaseReceivedBytes } from './received-bytes';
export { loadServerSecurity, type SecurityConfig, type ServerSecurity, type ServerTls } from './security';
