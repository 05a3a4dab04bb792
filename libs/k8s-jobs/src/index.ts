/**
 * Kubernetes batch/v1 Jobs for the trainer's job mode: each fine-tune runs in its own pod. A pure
 * builder of the Job object, an idempotent submit, the listing and deletion the trainer's runner
 * needs, the phase a Job's status means, and a client (`@kubernetes/client-node`'s `BatchV1Api`)
 * connected in or out of the cluster. The RBAC it needs is in k8s/components/trainer-job-mode;
 * deploy/ validates the built Job against the batch/v1 schema.
 */
export * from './types';
export * from './job-spec';
export * from './submit';
export * from './status';
export * from './client';
