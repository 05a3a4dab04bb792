import { registryRefsSpecCheck } from '@deit-serve/finetune';
import type { ModelRegistry } from '@deit-serve/registry';
import type { SpecCheck } from '@deit-serve/trainer-engine';

/**
 * The checks of what a spec names that StartFineTune runs before queueing it, beyond its form and its
 * paths (the sandbox): only cheap ones, so the call answers at once. Reading the data set, opening
 * the teacher and the student's weights is the job's: a bad one fails the job (FAILED, each field and
 * problem in its error). main() and the e2e tests wire the same ones.
 */
export function sourceChecks(registry: ModelRegistry): SpecCheck[] {
  return [registryRefsSpecCheck(registry)];
}
