import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeBackend, initBackend, NATIVE_ENV_DEFAULTS, nativePackages, wasmDistFolder } from './backend';
import { nativeBuildInstalled } from './native-testing';

const REGISTER_TS = join(__dirname, '..', '..', '..', 'tools', 'test-support', 'register-ts.cjs');

/** initBackend in a fresh Node process; `hideNative` makes the native packages unresolvable there. */
function backendInChild(options: { hideNative: boolean; preferred?: string }): {
  backend: string;
  env: string;
} {
  const dir = mkdtempSync(join(tmpdir(), 'deit-backend-'));
  const hook = join(dir, 'hide-native.cjs');
  writeFileSync(
    hook,
    `const Module = require('node:module');
const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (/^@tensorflow\\/tfjs-node(-gpu)?$/.test(request)) throw new Error('Cannot find module ' + request);
  return resolve.call(this, request, ...rest);
};`,
  );
  const program = `
const b = require(${JSON.stringify(join(__dirname, 'backend.ts'))});
b.initBackend(${options.preferred === undefined ? '' : JSON.stringify(options.preferred)}).then((name) => {
  console.log(JSON.stringify({ backend: b.describeBackend(), env: String(process.env.TF_ENABLE_ONEDNN_OPTS) }));
});`;
  const args = ['-r', REGISTER_TS, ...(options.hideNative ? ['-r', hook] : []), '-e', program];
  const env = { ...process.env };
  delete env['TF_ENABLE_ONEDNN_OPTS'];
  const result = spawnSync(process.execPath, args, { encoding: 'utf8', env, timeout: 60_000 });
  expect(result.status, result.stderr).toBe(0);
  return JSON.parse(result.stdout.trim().split('\n').pop() ?? '') as { backend: string; env: string };
}

describe('initBackend', () => {
  it('prefers native TensorFlow where the install built it, wasm otherwise, and is idempotent', async () => {
    const first = initBackend();
    const expected = nativeBuildInstalled() ? 'tensorflow' : 'wasm';
    expect(await first).toBe(expected);
    expect(tf.getBackend()).toBe(expected);
    expect(initBackend('cpu')).toBe(first);
    expect(await initBackend('cpu')).toBe(expected);
    expect(tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)).dataSync()[0])).toBe(3);
    expect(describeBackend()).toMatch(
      expected === 'tensorflow' ? /^tensorflow \(TensorFlow \d+\.\d+\.\d+, CPU\)$/ : /^wasm \(1 thread\)$/,
    );
  });

  it('falls back to wasm when the native binding cannot be loaded', () => {
    expect(backendInChild({ hideNative: true }).backend).toBe('wasm (1 thread)');
  });

  it('honours a preferred backend over the native default', () => {
    expect(backendInChild({ hideNative: false, preferred: 'wasm' }).backend).toBe('wasm (1 thread)');
  });

  it.runIf(nativeBuildInstalled())(
    'loads native TensorFlow without oneDNN custom ops and with its BFC allocator unless told otherwise',
    () => {
      expect(NATIVE_ENV_DEFAULTS['TF_ENABLE_ONEDNN_OPTS']).toBe('0');
      expect(NATIVE_ENV_DEFAULTS['TF_CPU_ALLOCATOR_USE_BFC']).toBe('true');
      expect(backendInChild({ hideNative: false })).toEqual({
        backend: expect.stringMatching(/^tensorflow \(TensorFlow 2\.21\.0, CPU\)$/) as unknown,
        env: '0',
      });
    },
  );

  it('tries tfjs-node-gpu first only where an NVIDIA driver is loaded', () => {
    // DEIT_GPU=cuda installs both; without a driver the GPU build would compute on the CPU as well,
    // after loading its CUDA kernels and logging that no driver was found.
    expect(nativePackages(true)).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
    expect(nativePackages(false)).toEqual(['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']);
    expect(nativePackages()).toEqual(nativePackages(existsSync('/proc/driver/nvidia/version')));
  });

  it('locates the wasm binaries on disk', () => {
    expect(existsSync(join(wasmDistFolder(), 'tfjs-backend-wasm-simd.wasm'))).toBe(true);
    expect(wasmDistFolder().endsWith('/')).toBe(true);
  });
});
