/**
 * Resource readings for benchmarks and logs: the wasm heap (what bounds the micro-batch) and CPU
 * time of the calling thread (what a step costs independently of other load on a shared machine).
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync } from 'node:fs';

/**
 * Size of the wasm backend's heap in bytes (undefined on other backends). The heap grows to the
 * peak a pass needed and never shrinks, and is capped at 4 GiB.
 */
export function wasmHeapBytes(): number | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return backend.wasm?.HEAPU8?.byteLength;
}

/** Linux USER_HZ: /proc reports CPU time in 1/100 s on every mainstream kernel configuration. */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * User + system CPU time of the calling thread in ms (10 ms resolution), from /proc/thread-self/stat;
 * undefined where that does not exist. Node 20 has no per-thread CPU clock, and a worker_thread's
 * `process.cpuUsage()` covers the whole process.
 */
export function threadCpuMs(): number | undefined {
  let stat: string;
  try {
    stat = readFileSync('/proc/thread-self/stat', 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces; the fields after its closing parenthesis are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}
