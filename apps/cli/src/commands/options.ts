/**
 * What every `deit` command shares: its streams, exit codes, the usage error, and the parsers of
 * numeric flags (a typo fails loudly, naming the flag, instead of becoming NaN).
 */
import { POS_EMBED_RESAMPLINGS, type PosEmbedResampling } from '@deit-serve/model';

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

/** `--pos-embed timm|deit`: how a checkpoint's position embedding is resampled to another --img-size. */
export function posEmbedFlag(text: string | undefined): PosEmbedResampling | undefined {
  if (text === undefined) return undefined;
  const found = POS_EMBED_RESAMPLINGS.find((method) => method === text);
  if (found === undefined) {
    throw new UsageError(`--pos-embed must be one of ${POS_EMBED_RESAMPLINGS.join(', ')}, not "${text}"`);
  }
  return found;
}

export const POS_EMBED_HELP = `--pos-embed timm (default) resamples a checkpoint's position embedding to another --img-size
as timm does when it loads the checkpoint (bicubic with antialias); --pos-embed deit as the DeiT
repository's fine-tuning code does (plain bicubic).
`;
