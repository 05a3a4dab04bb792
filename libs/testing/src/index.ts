export { healthCheck, startTestService, type TestService } from './grpc';
export { publishTinyDeit, TINY_DEIT, TINY_LABELS } from './models';
