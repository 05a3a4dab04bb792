import { describe, expect, it } from 'vitest';
import { intFlag, numberFlag, optionalIntFlag, positiveIntFlag, UsageError } from './options';

describe('numeric flags (the one parser every command uses)', () => {
  it('reads decimal integers at or above the minimum', () => {
    expect(intFlag('--n', '0', 0)).toBe(0);
    expect(intFlag('--n', '42', 1)).toBe(42);
    expect(positiveIntFlag('--n', '7')).toBe(7);
    expect(optionalIntFlag('--n', undefined, 1)).toBeUndefined();
    expect(optionalIntFlag('--n', '3', 1)).toBe(3);
  });

  it.each(['', ' 5', '1.5', '1e3', '0x10', '-1', '9007199254740993', 'five'])(
    'refuses %j as a UsageError naming the flag and the text',
    (text) => {
      expect(() => intFlag('--n', text, 0)).toThrow(
        new UsageError(`--n must be an integer ≥ 0, not ${JSON.stringify(text)}`),
      );
    },
  );

  it('says "a positive integer" for positiveIntFlag and the range otherwise', () => {
    expect(() => positiveIntFlag('--top-k', '0')).toThrow('--top-k must be a positive integer, not "0"');
    expect(() => intFlag('--limit', '0', 1)).toThrow('--limit must be an integer ≥ 1, not "0"');
    expect(() => optionalIntFlag('--seed', 'x', 0)).toThrow(UsageError);
  });

  it('reads finite numbers and refuses the rest', () => {
    expect(numberFlag('--lr', '5e-4')).toBe(0.0005);
    for (const text of ['', ' ', 'NaN', 'Infinity', 'x']) {
      expect(() => numberFlag('--lr', text)).toThrow(
        new UsageError(`--lr must be a number, not ${JSON.stringify(text)}`),
      );
    }
  });
});
