/**
 * V8's old-generation growth for a serving process. V8 sizes the heap for its next full collection
 * from how fast the program allocates against how fast it collects; a server like this one keeps a
 * small live heap (≈ 22 MB) while every request brings ≈ 1.2 MB of short-lived buffers, and V8 then
 * settles at the minimum growth factor: a full mark-compact every few requests (measured: one per ≈ 7
 * tensor requests at c=1, 30–40 in ten seconds at c=32), each marking the whole heap on the main thread
 * and V8's helper threads — CPU that the onnxruntime threads needed. A fixed factor of
 * 1 + percent/100 lets the heap grow further between collections for far fewer of them (bench, c=32:
 * the main thread and V8's helpers from ≈ 30 % to ≈ 12 % of one core, measured at 300 %; service ÷
 * raw onnxruntime 0.84 → 0.91 at 100 %, peak RSS 367 → 381 MB; 300 % gained little more and peaked
 * at 409 MB).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Sets V8's `--heap-growing-percent` for this process (0: leave V8's own heuristics). V8 reads it each
 * time it recomputes its limits, so setting it at start-up, before the first full collection, works
 * as the command-line flag does.
 */
export function applyHeapGrowth(
  percent: number,
  setFlags: (flags: string) => void = setFlagsFromString,
): void {
  if (!Number.isInteger(percent) || percent < 0) {
    throw new RangeError(`heap growing percent must be an integer ≥ 0, got ${percent}`);
  }
  if (percent > 0) setFlags(`--heap-growing-percent=${percent}`);
}
