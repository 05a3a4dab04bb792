import { type AccessRules, methodRoles } from '@deit-serve/grpc-server';
import { oipClient } from '@deit-serve/proto';

/**
 * Roles of the Open Inference Protocol's methods when authentication is on, as for
 * deit.inference.v1: what Classify's callers may do takes `classify`; loading a model and the
 * unsupported extensions take `admin`.
 */
export const OIP_ACCESS: AccessRules = methodRoles(oipClient.GRPCInferenceServiceService, {
  serverLive: 'classify',
  serverReady: 'classify',
  modelReady: 'classify',
  serverMetadata: 'classify',
  modelMetadata: 'classify',
  modelInfer: 'classify',
  modelStreamInfer: 'classify',
  modelConfig: 'classify',
  modelStatistics: 'classify',
  repositoryIndex: 'classify',
  repositoryModelLoad: 'admin',
  repositoryModelUnload: 'admin',
  systemSharedMemoryStatus: 'admin',
  systemSharedMemoryRegister: 'admin',
  systemSharedMemoryUnregister: 'admin',
  cudaSharedMemoryStatus: 'admin',
  cudaSharedMemoryRegister: 'admin',
  cudaSharedMemoryUnregister: 'admin',
  traceSetting: 'admin',
  logSettings: 'admin',
});
