import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * What a bearer token may do: `classify` (the inference service), `train` (the trainer) or `admin`,
 * which implies every other role.
 */
export const ROLES = ['classify', 'train', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** One entry of the tokens file: the token itself is never stored, only its SHA-256. */
export interface TokenEntry {
  readonly name: string;
  /** Lower-case hex SHA-256 of the token's UTF-8 bytes. */
  readonly sha256: string;
  readonly roles: readonly Role[];
}

/** The SHA-256 (lower-case hex) under which a token is listed in the tokens file. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

const entrySchema = z.strictObject({
  name: z
    .string({ message: 'must be a string' })
    .regex(/^[\w.@-]{1,64}$/, 'must be 1–64 letters, digits or . _ @ -'),
  sha256: z
    .string({ message: 'must be a string' })
    .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (the SHA-256 of the token: `deit auth hash-token`)')
    .transform((s) => s.toLowerCase()),
  roles: z
    .array(z.enum(ROLES, { message: `must be one of ${ROLES.join(', ')}` }), { message: 'must be a list' })
    .min(1, 'must name at least one role'),
});

const fileSchema = z.strictObject({ tokens: z.array(z.unknown(), { message: 'must be a list' }) });

/**
 * Parses the tokens file (JSON: `{"tokens": [{"name", "sha256", "roles"}]}`). Every problem is
 * returned, so that one edit fixes the file; `tokens` holds the valid entries.
 */
export function parseTokensFile(text: string): { tokens: TokenEntry[]; problems: string[] } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { tokens: [], problems: [`not valid JSON: ${(error as Error).message}`] };
  }
  const file = fileSchema.safeParse(json);
  if (!file.success) {
    return {
      tokens: [],
      problems: ['expected {"tokens": [{"name": ..., "sha256": ..., "roles": [...]}, ...]}'],
    };
  }
  const problems: string[] = [];
  const tokens: TokenEntry[] = [];
  const byName = new Map<string, number>();
  const byHash = new Map<string, number>();
  file.data.tokens.forEach((raw, i) => {
    if (typeof raw === 'object' && raw !== null && 'token' in raw) {
      // Someone pasted the plain token: refuse it rather than hash it, since the file must not hold it.
      problems.push(
        `tokens[${i}]: holds a plain "token"; store its SHA-256 as "sha256" instead (\`deit auth hash-token\`)`,
      );
      return;
    }
    const entry = entrySchema.safeParse(raw);
    if (!entry.success) {
      for (const issue of entry.error.issues) {
        const path = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
        problems.push(`tokens[${i}]${path}: ${issue.message}`);
      }
      return;
    }
    const { name, sha256 } = entry.data;
    const sameName = byName.get(name);
    const sameHash = byHash.get(sha256);
    if (sameName !== undefined) problems.push(`tokens[${i}]: name "${name}" is also tokens[${sameName}]'s`);
    else if (sameHash !== undefined)
      problems.push(
        `tokens[${i}] ("${name}"): the same token as tokens[${sameHash}]; give each caller its own`,
      );
    else {
      byName.set(name, i);
      byHash.set(sha256, i);
      tokens.push({ name, sha256, roles: [...new Set(entry.data.roles)] });
    }
  });
  if (problems.length === 0 && tokens.length === 0)
    problems.push(
      'lists no tokens, so every call would be refused (unset the variable to turn authentication off)',
    );
  return { tokens, problems };
}
