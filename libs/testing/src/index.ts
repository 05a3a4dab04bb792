export { healthCheck, startTestService, type TestService } from './grpc';
