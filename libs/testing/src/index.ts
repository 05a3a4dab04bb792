export { healthCheck, startTestService, type TestService } from './grpc';
export { publishTinyDeit, TINY_DEIT, TINY_LABELS } from './models';
export {
  bearer,
  createTestPki,
  pem,
  ROLE_TOKENS,
  writeTokensFile,
  type TestCert,
  type TestPki,
} from '@deit-serve/grpc-server/testing';
export { bufCurl, grpcurl, grpcurlPath, type ToolRun } from './reflection-clients';
