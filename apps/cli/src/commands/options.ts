import { InvalidArgumentError } from '@deit-serve/core';

/** An optional integer flag, checked: a typo fails loudly instead of becoming NaN. */
export function intOption(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidArgumentError(`${flag} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}
