#!/usr/bin/env node
// Recipe pilot for the zoo's teacher, judged on a hold-out of the TRAINING set (never the test set).
//
//   node bench/zoo-pilot/teacher-pilot.mjs NAME EPOCHS '{"architecture":{"stageDepths":[2,3,4]}}'
//
// Trains the zoo's teacher recipe (libs/zoo `ZOO_TEACHER_SPEC`) with the given overrides merged in,
// on 90% of the 60k training images, and prints top-1 on the other 10% (a stratified split, seed 0)
// after every evaluation and at the end, with seconds spent in training steps. Checkpoints go to
// var/zoo-pilot/teacher-NAME/ (resumable: run the same command again); nothing is published.
// Needs `npm run build` first.
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { mergeOverrides } from './overrides.mjs';

const root = join(import.meta.dirname, '..', '..');
const require = createRequire(join(root, 'package.json'));
const dist = (p) => require(join(root, 'dist', p));
const { trainTeacher, ZOO_TEACHER_SPEC } = dist('libs/zoo/src/index.js');
const { FASHION_MNIST_DIR, loadFashionMnist } = dist('libs/datasets/src/index.js');

const [name, epochsArg, overridesArg = '{}'] = process.argv.slice(2);
const epochs = Number(epochsArg);
if (!name || !(epochs >= 1)) {
  process.stderr.write('usage: teacher-pilot.mjs NAME EPOCHS [JSON overrides]\n');
  process.exit(2);
}
const spec = mergeOverrides(
  { ...ZOO_TEACHER_SPEC, epochs, evalIntervalEpochs: epochs },
  JSON.parse(overridesArg),
);
const workDir = join(root, 'var', 'zoo-pilot', `teacher-${name}`);
await mkdir(workDir, { recursive: true });
const { train, validation } = (await loadFashionMnist(FASHION_MNIST_DIR, 'train')).dataset.split(0.1, 0);
const log = (m) =>
  process.stdout.write(`[teacher-pilot ${name} ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
log(
  `${epochs} epochs, overrides ${overridesArg}; ${train.size} training images, ${validation.size} held out`,
);
const result = await trainTeacher({ spec, train, eval: validation, evalSetName: 'hold-out', workDir, log });
const last = result.history.evals.at(-1);
log(
  `done: hold-out top-1 ${(last?.cls?.top1 ?? NaN).toFixed(4)} after ${epochs} epochs, ` +
    `${(result.trainSeconds / 60).toFixed(1)} min of training steps, ${result.parameters} parameters`,
);
