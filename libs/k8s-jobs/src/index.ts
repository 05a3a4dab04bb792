/**
 * Kubernetes batch/v1 Jobs for the trainer's job mode: each fine-tune runs in its own pod. A pure
 * builder of the Job object and a thin, idempotent submit through any client with
 * `createNamespacedJob` (`BatchV1Api` of `@kubernetes/client-node`). The RBAC it needs is in
 * k8s/components/trainer-job-mode; deploy/ validates the built Job against the batch/v1 schema.
 */
export * from './types';
export * from './job-spec';
export * from './submit';
