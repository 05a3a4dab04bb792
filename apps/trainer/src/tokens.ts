import type { ValidateSpecOptions } from '@deit-serve/trainer-engine';

export const CONFIG = Symbol('trainer-config');
export const SPEC_OPTIONS = Symbol('spec-options');
export const SPEC_CHECKS = Symbol('spec-checks');
/** The job kinds the worker processes run (JobKinds), each with its configuration. */
export const JOB_KINDS = Symbol('job-kinds');
/** What runs the jobs (a JobExecutor): worker processes, or Kubernetes Jobs in job mode. */
export const JOB_EXECUTOR = Symbol('job-executor');
export type SpecOptions = ValidateSpecOptions;
/** The protected-alias check of StartFineTune (a ProtectedAliases). */
export const PROTECTED_ALIASES = Symbol('protected-aliases');
