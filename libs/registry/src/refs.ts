import { InvalidArgumentError } from '@deit-serve/core';

/**
 * A reference to a model in the registry, as written by users: `name`, `name@alias` or `name:version`.
 *
 * A bare `name` resolves to the version the `production` alias points to when that alias is set, and to the
 * newest version otherwise (see {@link DEFAULT_ALIAS}). Once `production` is set, publishing a new version
 * therefore never changes what a bare name serves; before that, the newest version wins.
 */
export type ModelRef =
  | { readonly name: string; readonly kind: 'default' }
  | { readonly name: string; readonly kind: 'alias'; readonly alias: string }
  | { readonly name: string; readonly kind: 'version'; readonly version: number };

/** The alias a bare model name resolves to when it is set. */
export const DEFAULT_ALIAS = 'production';

/** Longest model or alias name; keeps paths and metric labels short. */
export const MAX_NAME_LENGTH = 64;

// A leading letter or digit keeps names apart from the registry's own dot-files (`.tmp`, `.claims`, ...).
const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
const VERSION_PATTERN = /^[1-9][0-9]*$/;

function checkName(what: 'model' | 'alias', value: string): string | undefined {
  if (value.length === 0) return `${what} name is empty`;
  if (value.length > MAX_NAME_LENGTH) {
    return `${what} name is ${value.length} characters long; at most ${MAX_NAME_LENGTH} are allowed`;
  }
  // Checked before the pattern so that path tricks get a message that says what is wrong with them.
  if (value.includes('..')) return `${what} name ${JSON.stringify(value)} must not contain ".."`;
  if (!NAME_PATTERN.test(value)) {
    return (
      `${what} name ${JSON.stringify(value)} is invalid: use lowercase letters, digits, "-", "_" and ".", ` +
      'starting with a letter or digit'
    );
  }
  return undefined;
}

/** Throws InvalidArgumentError unless `name` is a valid model name. */
export function assertModelName(name: string): string {
  const problem = checkName('model', name);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return name;
}

/** Throws InvalidArgumentError unless `alias` is a valid alias name. */
export function assertAliasName(alias: string): string {
  const problem = checkName('alias', alias);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return alias;
}

/** Throws InvalidArgumentError unless `version` is a positive safe integer. */
export function assertVersion(version: number): number {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new InvalidArgumentError(`version ${String(version)} is invalid: versions are positive integers`);
  }
  return version;
}

/** Parses `name`, `name@alias` or `name:version`; throws InvalidArgumentError naming the problem. */
export function parseModelRef(text: string): ModelRef {
  const at = text.indexOf('@');
  const colon = text.indexOf(':');
  if (at >= 0 && colon >= 0) {
    throw new InvalidArgumentError(
      `model reference ${JSON.stringify(text)} is invalid: use name, name@alias or name:version, not both`,
    );
  }
  if (at >= 0) {
    const name = assertModelName(text.slice(0, at));
    const alias = text.slice(at + 1);
    if (alias.includes('@')) {
      throw new InvalidArgumentError(`model reference ${JSON.stringify(text)} has more than one "@"`);
    }
    return { name, kind: 'alias', alias: assertAliasName(alias) };
  }
  if (colon >= 0) {
    const name = assertModelName(text.slice(0, colon));
    const version = text.slice(colon + 1);
    if (!VERSION_PATTERN.test(version)) {
      throw new InvalidArgumentError(
        `model reference ${JSON.stringify(text)} is invalid: the version after ":" must be a positive ` +
          'integer without leading zeros',
      );
    }
    return { name, kind: 'version', version: assertVersion(Number(version)) };
  }
  return { name: assertModelName(text), kind: 'default' };
}

/** Inverse of {@link parseModelRef}; validates the parts so that the result always parses back. */
export function formatModelRef(ref: ModelRef): string {
  assertModelName(ref.name);
  switch (ref.kind) {
    case 'default':
      return ref.name;
    case 'alias':
      return `${ref.name}@${assertAliasName(ref.alias)}`;
    case 'version':
      return `${ref.name}:${assertVersion(ref.version)}`;
  }
}

/** Accepts either form so that APIs can take what the caller has at hand. */
export function toModelRef(ref: ModelRef | string): ModelRef {
  if (typeof ref === 'string') return parseModelRef(ref);
  // Objects may come from untyped callers (JSON, CLI); validate them the same way as text.
  formatModelRef(ref);
  return ref;
}
