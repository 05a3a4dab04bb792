import { InvalidArgumentError, type DomainError } from '@deit-serve/core';
import { assertAliasName, assertModelName, formatModelRef, parseModelRef, toModelRef } from '../src/index';
import { describe, expect, it } from 'vitest';

describe('model refs', () => {
  it('parses and formats the three forms', () => {
    expect(parseModelRef('deit-tiny')).toEqual({ name: 'deit-tiny', kind: 'default' });
    expect(parseModelRef('deit-tiny@production')).toEqual({
      name: 'deit-tiny',
      kind: 'alias',
      alias: 'production',
    });
    expect(parseModelRef('deit_tiny.v2:12')).toEqual({ name: 'deit_tiny.v2', kind: 'version', version: 12 });
    for (const text of ['a', 'a@b', 'a:1', 'm0-._x@can-ary.1', 'x'.repeat(64)]) {
      expect(formatModelRef(parseModelRef(text))).toBe(text);
    }
  });

  it.each([
    ['', 'model name is empty'],
    ['Deit', 'is invalid: use lowercase letters'],
    ['a..b', 'must not contain ".."'],
    ['../etc', 'must not contain ".."'],
    ['a/b', 'is invalid'],
    ['a\\b', 'is invalid'],
    ['a\nb', 'is invalid'],
    ['a\u0000', 'is invalid'],
    ['.hidden', 'starting with a letter or digit'],
    ['x'.repeat(65), 'at most 64'],
    ['a@', 'alias name is empty'],
    ['a@Prod', 'alias name "Prod" is invalid'],
    ['a@b@c', 'more than one "@"'],
    ['a@b:1', 'not both'],
    ['a:', 'positive integer'],
    ['a:0', 'positive integer'],
    ['a:01', 'without leading zeros'],
    ['a:1.5', 'positive integer'],
    ['a:99999999999999999999', 'versions are positive integers'],
  ])('rejects %j with a clear INVALID_ARGUMENT', (text, message) => {
    let error: unknown;
    try {
      parseModelRef(text);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(InvalidArgumentError);
    expect((error as DomainError).kind).toBe('INVALID_ARGUMENT');
    expect((error as Error).message).toContain(message);
  });

  // Names become folder and file names in the registry: nothing that could leave its folder.
  it.each([
    '..',
    '.',
    '../x',
    'x/..',
    'a..b',
    'a/b',
    '/abs',
    'a\\b',
    'c:x',
    'a\u0000b',
    'a\nb',
    'a\tb',
    'a\u007fb',
    'a\u2215b', // division slash, looks like "/"
    'a b',
    '',
  ])('refuses %j as a model name and as an alias name', (name) => {
    expect(() => assertModelName(name)).toThrow(InvalidArgumentError);
    expect(() => assertAliasName(name)).toThrow(InvalidArgumentError);
  });

  it('validates objects from untyped callers like text', () => {
    expect(() => toModelRef({ name: 'a', kind: 'version', version: -1 })).toThrow(InvalidArgumentError);
    expect(() => toModelRef({ name: 'A', kind: 'default' })).toThrow(InvalidArgumentError);
    expect(() => assertAliasName('a/b')).toThrow(/alias name "a\/b" is invalid/);
  });
});
