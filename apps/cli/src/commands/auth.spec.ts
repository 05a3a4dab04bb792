import { hashToken, parseTokensFile } from '@deit-serve/config';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runCli } from '../cli';

function io(stdinText?: string) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  if (stdinText !== undefined) stdin.end(stdinText);
  const text = (s: PassThrough) => () => (s.read() as Buffer | null)?.toString() ?? '';
  return { io: { stdout, stderr, stdin, env: {} }, out: text(stdout), err: text(stderr) };
}

describe('deit auth', () => {
  it('new-token prints a fresh random token once, and its tokens-file entry', async () => {
    const t = io();
    expect(await runCli(['auth', 'new-token', '--name', 'web', '--role', 'classify'], t.io)).toBe(0);
    const out = t.out();
    const token = /^token: (\S+)$/m.exec(out)?.[1] ?? '';
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // 32 random bytes, base64url
    const entry = JSON.parse(/^ {2}(\{.*\})$/m.exec(out)?.[1] ?? '{}') as unknown;
    expect(entry).toEqual({ name: 'web', sha256: hashToken(token), roles: ['classify'] });
    // The entry is what the services accept.
    expect(parseTokensFile(JSON.stringify({ tokens: [entry] })).problems).toEqual([]);

    const again = io();
    expect(
      await runCli(['auth', 'new-token', '--name', 'web', '--role', 'classify', '--json'], again.io),
    ).toBe(0);
    const json = JSON.parse(again.out()) as { token: string; entry: { sha256: string } };
    expect(json.token).not.toBe(token);
    expect(json.entry.sha256).toBe(hashToken(json.token));
  });

  it('new-token --add-to writes the entry into a tokens file the services accept and prints the token alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deit-cli-auth-'));
    const file = join(dir, 'tokens.json');
    const first = io();
    expect(
      await runCli(['auth', 'new-token', '--name', 'web', '--role', 'classify', '--add-to', file], first.io),
    ).toBe(0);
    const token = first.out().trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.err()).toMatch(/added "web" \(classify\) to .*tokens\.json/);
    const second = io();
    expect(
      await runCli(['auth', 'new-token', '--name', 'ci', '--role', 'train', '--add-to', file], second.io),
    ).toBe(0);
    const parsed = parseTokensFile(readFileSync(file, 'utf8'));
    expect(parsed.problems).toEqual([]);
    expect(parsed.tokens).toEqual([
      { name: 'web', sha256: hashToken(token), roles: ['classify'] },
      { name: 'ci', sha256: hashToken(second.out().trim()), roles: ['train'] },
    ]);
    expect(statSync(file).mode & 0o777).toBe(0o600);

    const duplicate = io();
    expect(
      await runCli(['auth', 'new-token', '--name', 'web', '--role', 'admin', '--add-to', file], duplicate.io),
    ).toBe(1);
    expect(duplicate.err()).toMatch(/already has a token named "web"/);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"tokens": [{"name": "x"}]}');
    const refused = io();
    expect(
      await runCli(['auth', 'new-token', '--name', 'y', '--role', 'admin', '--add-to', broken], refused.io),
    ).toBe(1);
    expect(refused.err()).toMatch(/is not a valid tokens file, left unchanged/);
    expect(readFileSync(broken, 'utf8')).toBe('{"tokens": [{"name": "x"}]}');
  });

  it('new-token refuses a missing name or an unknown role (exit 2)', async () => {
    const noName = io();
    expect(await runCli(['auth', 'new-token', '--role', 'train'], noName.io)).toBe(2);
    expect(noName.err()).toMatch(/^deit auth: --name NAME is required/);
    const badRole = io();
    expect(await runCli(['auth', 'new-token', '--name', 'x', '--role', 'root'], badRole.io)).toBe(2);
    expect(badRole.err()).toMatch(/^deit auth: --roles\[0\]: must be one of classify, train, admin/);
  });

  it('hash-token hashes its argument, or stdin without the final newline', async () => {
    const arg = io();
    expect(await runCli(['auth', 'hash-token', 'abc'], arg.io)).toBe(0);
    expect(arg.out()).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n');
    const piped = io('abc\n');
    expect(await runCli(['auth', 'hash-token'], piped.io)).toBe(0);
    expect(piped.out()).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n');
    const empty = io('');
    expect(await runCli(['auth', 'hash-token'], empty.io)).toBe(2);
  });

  it('check accepts a valid tokens file and lists every problem of a bad one (exit 1)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deit-cli-auth-'));
    const good = join(dir, 'good.json');
    writeFileSync(
      good,
      JSON.stringify({ tokens: [{ name: 'ci', sha256: hashToken('t'), roles: ['train'] }] }),
    );
    const ok = io();
    expect(await runCli(['auth', 'check', good], ok.io)).toBe(0);
    expect(ok.out()).toBe(`${good}: 1 token(s): ci (train)\n`);

    const bad = join(dir, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({ tokens: [{ name: 'ci', token: 'plain', roles: ['train'] }, { name: 'x' }] }),
    );
    const refused = io();
    expect(await runCli(['auth', 'check', bad], refused.io)).toBe(1);
    const err = refused.err();
    expect(err).toContain('tokens[0]: holds a plain "token"');
    expect(err).toContain('tokens[1].sha256:');
    expect(err).not.toContain('plain"');
  });
});
