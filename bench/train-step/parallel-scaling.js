#!/usr/bin/env node
// Does the wasm backend scale across cores with worker_threads as well as with child processes?
// Runs the same matmul loop (DeiT-Ti MLP shape at micro-batch 16: [1056,192]x[192,768]) in 1 and in
// N workers of each kind and prints ms per matmul; equal per-worker times mean linear scaling.
// Usage: node bench/train-step/parallel-scaling.js [N=2] [iterations=200]
'use strict';
const { Worker, isMainThread, parentPort } = require('node:worker_threads');
const { fork } = require('node:child_process');
const path = require('node:path');

async function work(iterations) {
  const tf = require('@tensorflow/tfjs-core');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  wasm.setWasmPaths(path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/'));
  await tf.setBackend('wasm');
  const a = tf.randomNormal([1056, 192]);
  const b = tf.randomNormal([192, 768]);
  // A block body: returning the Float32Array from tidy would make tfjs walk its elements.
  const once = () => {
    tf.tidy(() => {
      tf.matMul(a, b).dataSync();
    });
  };
  for (let i = 0; i < 5; i++) once();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) once();
  return (performance.now() - t0) / iterations;
}

function runThreads(n, iterations) {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve, reject) => {
          const w = new Worker(__filename, { workerData: iterations, argv: ['child'] });
          w.once('message', (ms) => {
            resolve(ms);
            void w.terminate();
          });
          w.once('error', reject);
        }),
    ),
  );
}

function runProcesses(n, iterations) {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve, reject) => {
          const c = fork(__filename, ['child', String(iterations)]);
          c.once('message', (ms) => {
            resolve(ms);
            c.kill();
          });
          c.once('error', reject);
        }),
    ),
  );
}

async function main() {
  const n = Number(process.argv[2] ?? 2);
  const iterations = Number(process.argv[3] ?? 200);
  const show = (label, times) =>
    console.log(`${label.padEnd(14)} ${times.map((t) => t.toFixed(2)).join(' / ')} ms per matmul`);
  show('1 thread', await runThreads(1, iterations));
  show(`${n} threads`, await runThreads(n, iterations));
  show('1 process', await runProcesses(1, iterations));
  show(`${n} processes`, await runProcesses(n, iterations));
}

if (!isMainThread) {
  void work(require('node:worker_threads').workerData).then((ms) => parentPort.postMessage(ms));
} else if (process.argv[2] === 'child') {
  void work(Number(process.argv[3])).then((ms) => process.send(ms));
} else {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
