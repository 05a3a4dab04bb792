import { type AccessRules, methodRoles } from '@deit-serve/grpc-server';
import { inferenceV1Client } from '@deit-serve/proto';

/**
 * The role each inference method needs when authentication is on (README "Security"): reading the
 * catalog reveals no more than classifying does, so all four take `classify` (or `admin`).
 */
export const INFERENCE_ACCESS: AccessRules = methodRoles(inferenceV1Client.InferenceServiceService, {
  classify: 'classify',
  classifyStream: 'classify',
  listModels: 'classify',
  getModel: 'classify',
});
