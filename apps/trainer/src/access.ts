import { type AccessRules, methodRoles } from '@deit-serve/grpc-server';
import { trainerV1Client } from '@deit-serve/proto';

/**
 * The role each trainer method needs when authentication is on (README "Security"). Reads take
 * `train` as writes do: a job's spec names files, datasets and models on the trainer's side, which
 * is not for callers who may only classify.
 */
export const TRAINER_ACCESS: AccessRules = methodRoles(trainerV1Client.TrainerServiceService, {
  startFineTune: 'train',
  cancelJob: 'train',
  getJob: 'train',
  listJobs: 'train',
  watchJob: 'train',
});
