import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { runCli } from './cli';

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const text = (s: PassThrough) => () => (s.read() as Buffer | null)?.toString() ?? '';
  return { io: { stdout, stderr, env: {} }, out: text(stdout), err: text(stderr) };
}

describe('deit CLI dispatch', () => {
  it('prints usage and exits 2 without a command', async () => {
    const t = io();
    expect(await runCli([], t.io)).toBe(2);
    expect(t.out()).toMatch(/usage: deit <command>/);
  });

  it('refuses an unknown command with exit code 2', async () => {
    const t = io();
    expect(await runCli(['frobnicate'], t.io)).toBe(2);
    expect(t.err()).toMatch(/unknown command "frobnicate"/);
  });

  it('routes `models` to the registry commands', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'deit-cli-'));
    const t = io();
    expect(await runCli(['models', 'list', '--registry', dir, '--json'], t.io)).toBe(0);
    expect(JSON.parse(t.out())).toEqual({ models: [] });
  });
});
