// The effects the root postinstall's steps share (install-native.mjs: tfjs-node and tfjs-node-gpu;
// install-gpu.mjs: onnxruntime's CUDA provider): pinned wheels through pip, members out of them, hard
// links from the cache, and child processes whose output goes to the step's log.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** A step that failed in a known way: its message is the reason the install prints. */
export class StepError extends Error {}

export const cacheRoot =
  process.env.DEIT_NATIVE_CACHE_DIR ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'deit-serve');

/**
 * pip download with the pinned hash (pip's cache is used); the file is checked again here.
 * @param {string} python
 * @param {{ project: string, version: string, file: string, sha256: string, pipTarget: string[] }} wheel
 * @param {string} dir
 * @param {string} log
 */
export function downloadWheel(python, wheel, dir, log) {
  mkdirSync(dir, { recursive: true });
  const requirements = join(dir, `${wheel.project}.requirements.txt`);
  writeFileSync(requirements, `${wheel.project}==${wheel.version} --hash=sha256:${wheel.sha256}\n`);
  const args = [
    '-m',
    'pip',
    'download',
    '--no-deps',
    '--only-binary=:all:',
    '--require-hashes',
    ...wheel.pipTarget,
  ];
  run(python, [...args, '--dest', dir, '-r', requirements], {
    log,
    step: `pip download ${wheel.project}==${wheel.version}`,
  });
  const path = join(dir, wheel.file);
  if (!existsSync(path)) throw new StepError(`pip did not produce ${wheel.file}`);
  const sha = sha256File(path);
  if (sha !== wheel.sha256) throw new StepError(`${wheel.file} has sha256 ${sha}, expected ${wheel.sha256}`);
  return path;
}

export function sha256File(/** @type {string} */ path) {
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(1 << 22);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/**
 * Named members of a wheel to named files, with Python's zipfile (python is already required for pip).
 * @param {string} python
 * @param {string} wheel
 * @param {Record<string, string>} members  member → output path
 * @param {string} log
 */
export function extractMembers(python, wheel, members, log) {
  const program = `
import json, os, shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for name, out in json.loads(sys.argv[2]).items():
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(name) as src, open(out, 'wb') as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
`;
  run(python, ['-c', program, wheel, JSON.stringify(members)], {
    log,
    step: `extracting ${wheel.split('/').pop()}`,
  });
}

/** Hard links (no second copy of hundreds of MB; the cache can be deleted safely), copies across devices. */
export function linkTree(/** @type {string} */ from, /** @type {string} */ to) {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const source = join(from, name);
    const target = join(to, name);
    const stat = lstatSync(source);
    if (stat.isDirectory()) linkTree(source, target);
    else if (stat.isSymbolicLink()) symlinkSync(readlinkSync(source), target);
    else {
      try {
        linkSync(source, target);
      } catch {
        copyFileSync(source, target);
      }
    }
  }
}

/**
 * Runs a command with its output appended to the log; a failure is a StepError naming the step.
 * @param {string} command
 * @param {string[]} args
 * @param {{ cwd: string, log: string, step: string, env?: NodeJS.ProcessEnv }} options
 */
export function run(command, args, { cwd, log, step, env = process.env }) {
  const fd = openSync(log, 'a');
  try {
    writeFileSync(fd, `\n$ ${command} ${args.map((a) => (a.includes('\n') ? '<program>' : a)).join(' ')}\n`);
    const result = spawnSync(command, args, { cwd, env, stdio: ['ignore', fd, fd] });
    if (result.error !== undefined) throw new StepError(`${step} failed: ${result.error.message}`);
    if (result.status !== 0) throw new StepError(`${step} failed (exit ${result.status ?? result.signal})`);
  } finally {
    closeSync(fd);
  }
}

export function runs(/** @type {string} */ command, /** @type {string[]} */ args) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return result.error === undefined && result.status === 0;
}

/** The first python whose pip runs, or undefined. */
export function findPython() {
  return ['python3', 'python'].find((p) => runs(p, ['-m', 'pip', '--version']));
}

export function readJsonOrUndefined(/** @type {string} */ path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}
