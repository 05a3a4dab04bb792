#!/usr/bin/env node
// Recipe pilot for the zoo's students, judged on a hold-out of the TRAINING set (never the test set).
//
//   node bench/zoo-pilot/pilot.mjs NAME EPOCHS '{"optimization":{"lr":2e-3}}' [--stage hard] [--local]
//
// Trains the zoo's student recipe (libs/zoo `zooStudentSpec`) with the given overrides
// merged in, on 90% of the 60k training images, and prints top-1 per head on the other 10% (a
// stratified split, seed 0). Publishes into a scratch registry under var/zoo-pilot/ (the teacher is
// copied there from ./registry), so nothing the project serves changes. Needs `npm run build` first.
// `--local` trains in one thread instead of data-parallel workers: two pilots side by side then move
// more images per second in all than one data-parallel pilot at a time (2 cores).
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { mergeOverrides } from './overrides.mjs';

const root = join(import.meta.dirname, '..', '..');
const require = createRequire(join(root, 'package.json'));
const dist = (p) => require(join(root, 'dist', p));
const { createFineTuneJob } = dist('libs/finetune/src/index.js');
const { zooStudentSpec, ZOO_MODELS } = dist('libs/zoo/src/index.js');
const { validateFineTuneSpec } = dist('libs/trainer-engine/src/index.js');
const { DirectoryRegistry } = dist('libs/registry/src/index.js');
const { FASHION_MNIST_DIR } = dist('libs/datasets/src/index.js');

const [name, epochsArg, overridesArg = '{}', ...rest] = process.argv.slice(2);
const stageAt = rest.indexOf('--stage');
const stage = stageAt >= 0 ? rest[stageAt + 1] : 'hard';
const local = rest.includes('--local');
const epochs = Number(epochsArg);
if (!name || !(epochs >= 1) || !['none', 'soft', 'hard'].includes(stage)) {
  process.stderr.write('usage: pilot.mjs NAME EPOCHS [JSON overrides] [--stage none|soft|hard] [--local]\n');
  process.exit(2);
}
const dir = join(root, 'var', 'zoo-pilot', name);
await rm(dir, { recursive: true, force: true });
await mkdir(join(dir, 'registry'), { recursive: true });
await cp(join(root, 'registry', ZOO_MODELS.teacher), join(dir, 'registry', ZOO_MODELS.teacher), {
  recursive: true,
});
const base = zooStudentSpec(stage, `${ZOO_MODELS.teacher}:1`, FASHION_MNIST_DIR);
const recipe = mergeOverrides(
  mergeOverrides(base, {
    outputModel: `pilot-${name}`,
    dataset: { fashionMnist: { dir: FASHION_MNIST_DIR, evalOnTest: false }, validationFraction: 0.1 },
    optimization: { epochs },
  }),
  JSON.parse(overridesArg),
);
const spec = validateFineTuneSpec(recipe);
const registry = await DirectoryRegistry.open(join(dir, 'registry'));
const log = (m) => process.stdout.write(`[pilot ${name} ${new Date().toISOString().slice(11, 19)}] ${m}\n`);
log(`stage ${stage}, ${epochs} epochs, overrides ${overridesArg}${local ? ', one thread' : ''}`);
let last = 0;
const t0 = performance.now();
const result = await createFineTuneJob({ registry, parallelism: local ? 'local' : 'auto' })({
  jobId: `pilot-${name}`,
  spec,
  workDir: join(dir, 'work'),
  attempt: 1,
  signal: new AbortController().signal,
  report: {
    progress: (p) => {
      if (performance.now() - last < 60_000) return;
      last = performance.now();
      log(
        `epoch ${p.epoch}/${p.epochs} step ${p.step}/${p.stepsPerEpoch} loss ${(p.loss?.total ?? NaN).toFixed(4)} ${(p.imagesPerSecond ?? 0).toFixed(0)} img/s`,
      );
    },
    eval: (e) => log(`eval ${JSON.stringify(e)}`),
    checkpoint: () => Promise.resolve(),
    log,
    backend: () => undefined,
  },
});
const minutes = (performance.now() - t0) / 60_000;
const summary = {
  name,
  stage,
  epochs,
  local,
  overrides: JSON.parse(overridesArg),
  minutes: Number(minutes.toFixed(1)),
  result,
};
await writeFile(join(dir, 'result.json'), `${JSON.stringify(summary, null, 2)}\n`);
log(`done in ${minutes.toFixed(1)} min: ${JSON.stringify(result.finalEval ?? result)}`);
process.exit(0);
