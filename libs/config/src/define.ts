import { z } from 'zod';

/** One configuration variable: where it comes from, how it is parsed, its default, what it means. */
export interface ConfigField<T> {
  readonly env: string;
  readonly schema: z.ZodType<T>;
  /** Absent when the variable is required. */
  readonly default?: T;
  readonly description: string;
}

export type ConfigSpec = Record<string, ConfigField<unknown>>;

export type ConfigOf<S extends ConfigSpec> = {
  readonly [K in keyof S]: S[K] extends ConfigField<infer T> ? T : never;
};

export function field<T>(
  env: string,
  schema: z.ZodType<T>,
  defaultValue: T | undefined,
  description: string,
): ConfigField<T> {
  return defaultValue === undefined
    ? { env, schema, description }
    : { env, schema, default: defaultValue, description };
}

/** Every bad variable of one start-up, reported together so that one restart fixes them all. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Reads, validates and types a configuration from environment variables, once, at start-up. */
export function loadConfig<S extends ConfigSpec>(spec: S, env: NodeJS.ProcessEnv = process.env): ConfigOf<S> {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, f] of Object.entries(spec)) {
    const raw = env[f.env];
    if (raw === undefined || raw === '') {
      if (f.default === undefined) problems.push(`${f.env} is required: ${f.description}`);
      else out[key] = f.default;
      continue;
    }
    const parsed = f.schema.safeParse(raw);
    if (parsed.success) out[key] = parsed.data;
    else
      problems.push(
        `${f.env}=${JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
      );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

// Parsers for values that arrive as strings.

export const port = z.coerce
  .number()
  .int('must be an integer')
  .min(1, 'must be ≥ 1')
  .max(65535, 'must be ≤ 65535');

export function intInRange(min: number, max: number): z.ZodType<number> {
  return z.coerce
    .number()
    .int('must be an integer')
    .min(min, `must be ≥ ${min}`)
    .max(max, `must be ≤ ${max}`);
}

export const boolean: z.ZodType<boolean> = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

export function oneOf<const T extends readonly [string, ...string[]]>(values: T): z.ZodType<T[number]> {
  return z.enum(values, { message: `must be one of ${values.join(', ')}` });
}

export const nonEmpty = z.string().min(1, 'must not be empty');

/** A `:`-separated list of paths, as in PATH; empty entries are ignored. */
export const pathList: z.ZodType<readonly string[]> = z
  .string()
  .transform((value) => value.split(':').filter((entry) => entry !== ''))
  .pipe(
    z
      // eslint-disable-next-line no-control-regex -- control characters are what this refuses
      .array(z.string().regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters'))
      .min(1, 'must name at least one path'),
  );

/**
 * A `,`-separated list of registry alias names (lower-case letters, digits, `-`, `_`, `.`); `none`
 * for an empty list, since an empty variable means its default.
 */
export const aliasList: z.ZodType<readonly string[]> = z
  .string()
  .transform((value) =>
    value.trim() === 'none'
      ? []
      : value
          .split(',')
          .map((entry) => entry.trim())
          .filter((entry) => entry !== ''),
  )
  .pipe(
    z.array(
      z
        .string()
        .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'each must be an alias name (a-z, 0-9, ".", "_", "-")')
        .refine((name) => !name.includes('..'), 'an alias name must not contain ".."'),
    ),
  );

/** A Kubernetes object name that must be a DNS label (namespaces, claims, service accounts). */
export const dnsLabel = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label (lower-case letters, digits, -)');
