import { InvalidArgumentError } from '@deit-serve/core';

/** What a command reads and writes besides its arguments (tests pass their own streams and env). */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
  /** Where a command reads what it was not given (`deit auth hash-token`'s token). */
  stdin?: NodeJS.ReadableStream;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
/** Bad arguments: the usage was printed. */
export const EXIT_USAGE = 2;

/** An optional integer flag, checked: a typo fails loudly instead of becoming NaN. */
export function intOption(value: string | undefined, flag: string, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidArgumentError(`${flag} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}
