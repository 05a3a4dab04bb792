/**
 * What every `deit` command shares: its streams, exit codes, the usage error, and the parsers of
 * numeric flags (a typo fails loudly, naming the flag, instead of becoming NaN).
 */

/** What a command reads and writes besides its arguments (tests pass their own streams and env). */
export interface CommandIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
  /** Where a command reads what it was not given (`deit auth hash-token`'s token). */
  stdin?: NodeJS.ReadableStream;
}

export const EXIT_OK = 0;
/** The command ran and failed (unknown ref, damaged files, a refused call, ...). */
export const EXIT_FAILURE = 1;
/** Bad arguments: the usage was printed. */
export const EXIT_USAGE = 2;

/** A wrong command line: the command prints it with its usage and exits {@link EXIT_USAGE}. */
export class UsageError extends Error {}

/** An integer flag ≥ `min`, written in decimal digits; `what` names the range in the message. */
export function intFlag(flag: string, text: string, min: number, what = `an integer ≥ ${min}`): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${flag} must be ${what}, not ${JSON.stringify(text)}`);
  return n;
}

/** An integer flag ≥ 1. */
export function positiveIntFlag(flag: string, text: string): number {
  return intFlag(flag, text, 1, 'a positive integer');
}

/** {@link intFlag} for a flag that may be left out. */
export function optionalIntFlag(flag: string, text: string | undefined, min: number): number | undefined {
  return text === undefined ? undefined : intFlag(flag, text, min);
}

/** A finite number flag. */
export function numberFlag(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n))
    throw new UsageError(`${flag} must be a number, not ${JSON.stringify(text)}`);
  return n;
}
