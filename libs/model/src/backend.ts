/**
 * Picks and initialises the TensorFlow.js backend once per process.
 *
 * Order of preference: `tensorflow` (native libtensorflow through `@tensorflow/tfjs-node-gpu` or
 * `@tensorflow/tfjs-node`, optional packages that cannot be installed offline, so they are required
 * dynamically), then `wasm` (XNNPACK + SIMD, one thread in Node), then `cpu` (plain JS, ~20x slower
 * than wasm; a last resort). Passing `preferred` moves that backend to the front; a failing backend
 * falls through to the next one. `npm ci` builds `@tensorflow/tfjs-node` where it can
 * (tools/scripts/install-native.mjs), so `tensorflow` is the default wherever that succeeded.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

const DEFAULT_ORDER: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/**
 * The optional native bindings in the order they are tried; each registers the `tensorflow` backend.
 * tfjs-node-gpu (built by `DEIT_GPU=cuda npm ci` beside tfjs-node) comes first only where an NVIDIA
 * driver is loaded: elsewhere it computes on the CPU like tfjs-node, after loading its GPU kernels and
 * logging that no driver was found.
 */
export function nativePackages(nvidiaDriver = existsSync('/proc/driver/nvidia/version')): readonly string[] {
  return nvidiaDriver
    ? ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']
    : ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'];
}

const nodeRequire = createRequire(__filename);

/**
 * Environment libtensorflow reads once, when it loads; a value already set wins. oneDNN's primitive
 * cache grew a DeiT-Ti training process to 5.7 GB at the same speed as 625 MB without oneDNN's
 * custom ops. TensorFlow's BFC allocator on the CPU reuses its own chunks where glibc's malloc, fed
 * tensors of many sizes by two threads, fragmented: a DeiT-Ti step at 32 rows per pass peaked at
 * 1.83 GiB instead of 2.21 GiB, and ran 2.5 s instead of 2.9 s. INFO-level start-up chatter is not
 * worth a log line per process.
 */
export const NATIVE_ENV_DEFAULTS: Readonly<Record<string, string>> = {
  TF_ENABLE_ONEDNN_OPTS: '0',
  TF_CPU_ALLOCATOR_USE_BFC: 'true',
  TF_CPP_MIN_LOG_LEVEL: '1',
};

let initialised: Promise<string> | undefined;

/**
 * Initialise a backend and return the name of the one in use. Idempotent: later calls return the
 * first call's result whatever `preferred` says (tfjs holds one global backend; switching it under
 * live variables would move every tensor).
 */
export function initBackend(preferred?: BackendName): Promise<string> {
  initialised ??= selectBackend(preferred).catch((error: unknown) => {
    initialised = undefined;
    throw error;
  });
  return initialised;
}

async function selectBackend(preferred: BackendName | undefined): Promise<string> {
  const order =
    preferred === undefined ? DEFAULT_ORDER : [preferred, ...DEFAULT_ORDER.filter((b) => b !== preferred)];
  const failures: string[] = [];
  for (const name of order) {
    try {
      if (await tryBackend(name)) return tf.getBackend();
      failures.push(`${name}: not available`);
    } catch (error) {
      failures.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could be initialised (${failures.join('; ')})`);
}

async function tryBackend(name: BackendName): Promise<boolean> {
  switch (name) {
    case 'tensorflow':
      if (!loadNativeBinding()) return false;
      return tf.setBackend('tensorflow');
    case 'wasm':
      // Importing the package registers the backend; in Node the .wasm binaries must be located on
      // disk explicitly, because bundlers and test runners move the module away from its dist folder.
      setWasmPaths(wasmDistFolder());
      return tf.setBackend('wasm');
    case 'cpu':
      return tf.setBackend('cpu');
  }
}

/**
 * Loads the native binding if one is installed and registers the `tensorflow` backend, without
 * switching to it. False where none loads (not installed, or installed but not built).
 */
export function loadNativeBinding(): boolean {
  if (tf.findBackendFactory('tensorflow') !== null) return true;
  for (const [name, value] of Object.entries(NATIVE_ENV_DEFAULTS)) process.env[name] ??= value;
  for (const pkg of nativePackages()) {
    try {
      // Loaded by a name only known at run time, so neither the type-checker nor bundlers need it.
      nodeRequire(pkg);
      if (tf.findBackendFactory('tensorflow') !== null) return true;
    } catch {
      // Not installed, or its addon was not built: try the next one.
    }
  }
  return false;
}

/** Absolute path, with trailing separator, of the folder holding `tfjs-backend-wasm*.wasm`. */
export function wasmDistFolder(): string {
  const entry = nodeRequire.resolve('@tensorflow/tfjs-backend-wasm');
  const folder = dirname(entry);
  return join(folder, '/');
}

/**
 * Whether tfjs runs on native TensorFlow (tfjs-node), whose kernels the model layers use directly
 * (conv gradients, batched matmuls, fused BatchNorm) instead of the formulations written for wasm.
 */
export function onNativeTensorflow(): boolean {
  return tf.getBackend() === 'tensorflow';
}

/** The parts of tfjs-node's backend object read here (its types are not a dependency). */
interface NativeBackend {
  readonly isUsingGpuDevice?: boolean;
  readonly binding?: { readonly TF_Version?: string };
}

/**
 * What the current backend runs on, for logs and records: e.g. `tensorflow (TensorFlow 2.21.0, CPU)`
 * or `wasm (1 thread)`.
 */
export function describeBackend(): string {
  const name = tf.getBackend();
  switch (name) {
    case 'tensorflow': {
      const native = tf.backend() as unknown as NativeBackend;
      const device = native.isUsingGpuDevice === true ? 'GPU' : 'CPU';
      return `tensorflow (TensorFlow ${native.binding?.TF_Version ?? 'unknown version'}, ${device})`;
    }
    case 'wasm':
      return 'wasm (1 thread)';
    default:
      return name;
  }
}
