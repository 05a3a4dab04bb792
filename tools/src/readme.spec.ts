import { inferenceConfigSpec, trainerConfigSpec, type ConfigSpec } from '@deit-serve/config';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { workspaceRoot } from './workspace';

/** Every documented default is tested: the README's configuration table must match the code. */
function formatDefault(value: unknown): string {
  if (Array.isArray(value)) return value.join(':'); // path lists, written as in PATH
  return typeof value === 'string' ? value : JSON.stringify(value);
}

describe('README configuration table', () => {
  const readme = readFileSync(join(workspaceRoot, 'README.md'), 'utf8');
  const rows = new Map<string, string>();
  for (const match of readme.matchAll(/^\| `(DEIT_[A-Z0-9_]+)` \| ([^|]*) \|/gm)) {
    rows.set(match[1] ?? '', (match[2] ?? '').trim());
  }

  const check = (spec: ConfigSpec) => {
    for (const field of Object.values(spec)) {
      const documented = rows.get(field.env);
      expect(documented, `${field.env} is missing from the README`).toBeDefined();
      const expected =
        field.default === undefined
          ? 'required'
          : field.default === '' // an optional setting that is off until set
            ? 'unset'
            : `\`${formatDefault(field.default)}\``;
      expect(documented, field.env).toBe(expected);
    }
  };

  it('lists every inference variable with its default', () => check(inferenceConfigSpec));
  it('lists every trainer variable with its default', () => check(trainerConfigSpec));
});
