import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { initBackend, wasmDistFolder } from './backend';

describe('initBackend', () => {
  it('falls back to wasm without the native bindings, and is idempotent', async () => {
    // @tensorflow/tfjs-node(-gpu) cannot be installed offline, so the first choice is unavailable here.
    const first = initBackend();
    expect(await first).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(initBackend('cpu')).toBe(first);
    expect(await initBackend('cpu')).toBe('wasm');
    expect(tf.tidy(() => tf.add(tf.scalar(1), tf.scalar(2)).dataSync()[0])).toBe(3);
  });

  it('locates the wasm binaries on disk', () => {
    expect(existsSync(join(wasmDistFolder(), 'tfjs-backend-wasm-simd.wasm'))).toBe(true);
    expect(wasmDistFolder().endsWith('/')).toBe(true);
  });
});
