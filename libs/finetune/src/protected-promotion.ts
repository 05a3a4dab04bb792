/**
 * Protected aliases (DEIT_PROTECTED_ALIASES, default `production`): what a fine-tune may move there.
 *
 * The promotion policy compares versions on the job's evaluation set, and the caller chooses that
 * set: with its labels shifted by one, a worse model "improves". So for a caller without `admin`, a
 * protected alias that points somewhere moves only when the new version beats the incumbent on the
 * set the incumbent's manifest records, which the trainer rebuilds from its own data roots
 * (server-eval-set.ts) and evaluates both sides on itself. When it cannot rebuild that set the
 * alias stays (the version is still published), and StartFineTune refuses such a job up front when
 * it can already tell. An admin's job follows the ordinary policy.
 */
import { PermissionDeniedError, NotFoundError } from '@deit-serve/core';
import { labelsInOrder, type ModelRegistry } from '@deit-serve/registry';
import type { FineTuneJobSpec, PromotionGuard } from '@deit-serve/trainer-engine';
import {
  applyPromotion,
  decidePromotion,
  evaluateVersion,
  type ApplyPromotionOptions,
  type PromotionOutcome,
} from './promotion';
import { hasFashionMnistFor, parseEvalSetName, reproduceEvalSet } from './server-eval-set';
import { labelMismatch } from './sources';

/** Who asked for the job, as the trainer authenticated them; undefined with authentication off. */
export interface Caller {
  readonly name: string;
  readonly roles: readonly string[];
}

export interface ProtectedAliasesOptions {
  /** DEIT_PROTECTED_ALIASES. */
  readonly aliases: readonly string[];
  /** Where the trainer's own data lies (DEIT_TRAINER_DATA_ROOTS). */
  readonly dataRoots: readonly string[];
  /** The registry, or how to open it on first use. */
  readonly registry: ModelRegistry | (() => Promise<ModelRegistry>);
}

/** The check StartFineTune runs: the guard a job's promotion gets, or PERMISSION_DENIED now. */
export class ProtectedAliases {
  private registry?: Promise<ModelRegistry>;

  constructor(private readonly options: ProtectedAliasesOptions) {}

  get aliases(): readonly string[] {
    return this.options.aliases;
  }

  /**
   * `undefined` for no promotion or an unprotected alias; `admin` for a caller with that role;
   * otherwise `server-evaluated`, unless the alias's current version was measured on a set the
   * trainer cannot rebuild, which no such job could ever beat: PERMISSION_DENIED, saying why.
   */
  async guardFor(spec: FineTuneJobSpec, caller: Caller | undefined): Promise<PromotionGuard | undefined> {
    const alias = spec.promotion?.alias;
    if (alias === undefined || !this.options.aliases.includes(alias)) return undefined;
    if (caller?.roles.includes('admin') === true) return 'admin';
    const open = this.options.registry;
    this.registry ??= typeof open === 'function' ? open() : Promise.resolve(open);
    const registry = await this.registry;
    let target: number | undefined;
    try {
      target = (await registry.getAliases(spec.outputModel))[alias];
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    // Nothing to beat yet; the job checks again when it ends.
    if (target === undefined) return 'server-evaluated';
    const info = await registry.getManifest(`${spec.outputModel}:${target}`, { integrity: 'size' });
    const recorded = info.manifest.metrics?.eval_set;
    const set =
      recorded === undefined ? { problem: 'its manifest records no evaluation' } : parseEvalSetName(recorded);
    const problem =
      'problem' in set
        ? set.problem
        : (await hasFashionMnistFor(set, this.options.dataRoots))
          ? undefined
          : `no data root (${this.options.dataRoots.join(', ')}) holds the Fashion-MNIST files to rebuild it`;
    if (problem === undefined) return 'server-evaluated';
    throw new PermissionDeniedError(
      `promotion.alias: ${alias} is a protected alias (DEIT_PROTECTED_ALIASES); ` +
        `${caller === undefined ? 'a caller' : `token "${caller.name}"`} without the admin role may move it only ` +
        `when the new version beats ${spec.outputModel}:${target} on the evaluation set its manifest records, ` +
        `rebuilt by the trainer, and that set cannot be rebuilt: ${problem}. Promote to another alias, or ask an admin`,
    );
  }
}

export interface GuardedPromotionOptions extends ApplyPromotionOptions {
  /** DEIT_TRAINER_DATA_ROOTS: where the incumbent's evaluation set is rebuilt from. */
  readonly serverDataRoots: readonly string[];
}

/** {@link applyPromotion}, with protected aliases judged on the incumbent's set for non-admins. */
export async function applyGuardedPromotion(options: GuardedPromotionOptions): Promise<PromotionOutcome> {
  const { registry, model, version, policy } = options;
  if (policy?.guard !== 'server-evaluated') return applyPromotion(options);
  const target = (await registry.getAliases(model))[policy.alias];
  if (target === undefined) return applyPromotion(options);
  const outcome = await judgeOnServerSet(options, target);
  if (outcome.promoted) await registry.setAlias(model, policy.alias, version, { reason: outcome.reason });
  return outcome;
}

const PROTECTED = 'protected alias, no admin role';

async function judgeOnServerSet(options: GuardedPromotionOptions, target: number): Promise<PromotionOutcome> {
  const { registry, model, version } = options;
  const policy = options.policy;
  if (policy === undefined) return { promoted: false, reason: 'no promotion policy' };
  const alias = policy.alias;
  const notMoved = (why: string): PromotionOutcome => ({
    promoted: false,
    reason: `${PROTECTED}: ${why}: ${alias} stays at v${target} (an admin may move it)`,
  });
  const incumbent = (await registry.getManifest(`${model}:${target}`, { integrity: 'size' })).manifest;
  const recorded = incumbent.metrics?.eval_set;
  if (incumbent.metrics === null || recorded === undefined) {
    return notMoved(`v${target}'s manifest records no evaluation set to compare on`);
  }
  const rebuilt = await reproduceEvalSet(recorded, options.serverDataRoots);
  if ('problem' in rebuilt) {
    return notMoved(`the trainer cannot rebuild v${target}'s evaluation set ${recorded}: ${rebuilt.problem}`);
  }
  const candidate = (await registry.getManifest(`${model}:${version}`, { integrity: 'size' })).manifest;
  const mismatch = labelMismatch(labelsInOrder(candidate.labels), rebuilt.dataset.labelNames);
  if (mismatch !== undefined) return notMoved(`v${version}'s labels differ from ${recorded}'s (${mismatch})`);
  // Both sides measured here: a number in a manifest is only as good as the job that wrote it.
  const candidateTop1 = await evaluateVersion(options, version, rebuilt.dataset);
  const incumbentTop1 = await evaluateVersion(options, target, rebuilt.dataset);
  const outcome = decidePromotion(
    policy,
    { version, top1: candidateTop1 },
    { version: target, top1: incumbentTop1, source: 'evaluated' },
    `${recorded} (rebuilt by the trainer)`,
  );
  return {
    promoted: outcome.promoted,
    reason:
      `${PROTECTED}: judged on the incumbent's evaluation set, not the job's (${options.evalSet}, ` +
      `where v${version} scored ${options.candidateTop1.toFixed(4)}): ${outcome.reason}`,
  };
}
