import { describe, expect, it } from 'vitest';
import { hashToken, parseTokensFile } from './tokens';

const HASH = hashToken('s3cret');

describe('hashToken', () => {
  it('is the lower-case hex SHA-256 of the UTF-8 bytes', () => {
    // sha256("abc"), FIPS 180-2 test vector.
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('parseTokensFile', () => {
  it('reads name, sha256 (lower-cased) and roles of each entry', () => {
    const text = JSON.stringify({
      tokens: [
        { name: 'web', sha256: HASH.toUpperCase(), roles: ['classify'] },
        { name: 'ops', sha256: hashToken('other'), roles: ['admin', 'admin'] },
      ],
    });
    expect(parseTokensFile(text)).toEqual({
      tokens: [
        { name: 'web', sha256: HASH, roles: ['classify'] },
        { name: 'ops', sha256: hashToken('other'), roles: ['admin'] },
      ],
      problems: [],
    });
  });

  it('reports a file that is not JSON, or not the expected shape', () => {
    expect(parseTokensFile('{tokens: ').problems[0]).toMatch(/^not valid JSON: /);
    expect(parseTokensFile('[]').problems).toEqual([
      'expected {"tokens": [{"name": ..., "sha256": ..., "roles": [...]}, ...]}',
    ]);
  });

  it('reports every bad entry at once, with its index and field', () => {
    const text = JSON.stringify({
      tokens: [
        { name: 'a b', sha256: 'xyz', roles: ['classify'] },
        { name: 'ok', sha256: HASH, roles: ['root'] },
        { name: 'c', sha256: hashToken('c'), roles: [] },
        { name: 'd', sha256: hashToken('d'), roles: ['train'], extra: 1 },
      ],
    });
    const { problems } = parseTokensFile(text);
    expect(problems).toEqual([
      'tokens[0].name: must be 1–64 letters, digits or . _ @ -',
      'tokens[0].sha256: must be 64 hex digits (the SHA-256 of the token: `deit auth hash-token`)',
      'tokens[1].roles[0]: must be one of classify, train, admin',
      'tokens[2].roles: must name at least one role',
      expect.stringMatching(/^tokens\[3\]: Unrecognized key.*extra/),
    ]);
  });

  it('refuses a plain token without echoing it, and duplicate names or tokens', () => {
    const text = JSON.stringify({
      tokens: [
        { name: 'plain', token: 'hunter2', roles: ['classify'] },
        { name: 'a', sha256: HASH, roles: ['classify'] },
        { name: 'a', sha256: hashToken('x'), roles: ['train'] },
        { name: 'b', sha256: HASH, roles: ['train'] },
      ],
    });
    const { problems } = parseTokensFile(text);
    expect(problems).toEqual([
      'tokens[0]: holds a plain "token"; store its SHA-256 as "sha256" instead (`deit auth hash-token`)',
      `tokens[2]: name "a" is also tokens[1]'s`,
      'tokens[3] ("b"): the same token as tokens[1]; give each caller its own',
    ]);
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it('refuses a file without tokens: it would lock everyone out', () => {
    expect(parseTokensFile('{"tokens": []}').problems).toEqual([
      'lists no tokens, so every call would be refused (unset the variable to turn authentication off)',
    ]);
  });
});
