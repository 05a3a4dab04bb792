import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { manifestSchema } from '@deit-serve/registry';
import { describe, expect, it } from 'vitest';
import { signatureOf } from './signature';

/** The committed default model's manifest, read anew each call (a new object). */
function manifest() {
  const file = join(__dirname, '..', '..', '..', 'registry', 'fmnist-deit', '1', 'manifest.json');
  return manifestSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
}

describe('signatureOf', () => {
  it('reads a manifest once: the same manifest object gives the same signature object', () => {
    const m = manifest();
    const first = signatureOf(m);
    expect(signatureOf(m)).toBe(first);
    expect(first.labels).toHaveLength(10);
    expect(first.cls.dims).toEqual([first.labels.length]);
  });

  it('reads another manifest object afresh', () => {
    const a = manifest();
    const b = { ...a, labels: { ...a.labels } };
    expect(signatureOf(b)).not.toBe(signatureOf(a));
    expect(signatureOf(b)).toEqual(signatureOf(a));
  });
});
