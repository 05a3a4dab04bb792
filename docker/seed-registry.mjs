#!/usr/bin/env node
// Seeds a model registry volume with the models baked into the image:
//   node seed-registry.mjs SEED_DIR REGISTRY_DIR
// Each model folder of SEED_DIR (<model>/<version>/..., aliases, claims) that REGISTRY_DIR lacks is
// copied into REGISTRY_DIR/.tmp/ first and then renamed into place, so a reader (the inference
// service polls the registry) never sees half a model; models already there are left alone, so the
// script runs on every start of the trainer pod (its init container) without undoing promotions.
import { cp, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

const [seed, registry] = process.argv.slice(2);
if (!seed || !registry) {
  console.error('usage: seed-registry.mjs SEED_DIR REGISTRY_DIR');
  process.exit(2);
}

const exists = (path) =>
  stat(path).then(
    () => true,
    (error) => (error.code === 'ENOENT' ? false : Promise.reject(error)),
  );

await mkdir(join(registry, '.tmp'), { recursive: true });
let seeded = 0;
for (const entry of await readdir(seed, { withFileTypes: true })) {
  // Registry dot-folders (.tmp staging, locks) are not models.
  if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
  const target = join(registry, entry.name);
  if (await exists(target)) {
    console.log(`seed-registry: ${entry.name}: present, left alone`);
    continue;
  }
  const staging = await mkdtemp(join(registry, '.tmp', 'seed-'));
  try {
    await cp(join(seed, entry.name), join(staging, entry.name), {
      recursive: true,
      filter: (source) => !source.endsWith('/.lock'),
    });
    await rename(join(staging, entry.name), target);
    seeded++;
    console.log(`seed-registry: ${entry.name}: published`);
  } catch (error) {
    // Another seeder (a second pod) won the rename: its copy is the same.
    if (!['EEXIST', 'ENOTEMPTY'].includes(error.code)) throw error;
    console.log(`seed-registry: ${entry.name}: published concurrently, left alone`);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
console.log(`seed-registry: ${seeded} model(s) published into ${registry}`);
