import type { ValidateSpecOptions } from '@deit-serve/trainer-engine';

export const CONFIG = Symbol('trainer-config');
export const SPEC_OPTIONS = Symbol('spec-options');
export const SPEC_CHECKS = Symbol('spec-checks');
export type SpecOptions = ValidateSpecOptions;
