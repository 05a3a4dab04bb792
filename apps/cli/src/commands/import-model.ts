import { packageAndPublish, presetWeights } from '@deit-serve/packaging';
import { DEFAULT_REGISTRY_DIR } from '@deit-serve/config';
import { DirectoryRegistry } from '@deit-serve/registry';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { type CommandIo, optionalIntFlag, POS_EMBED_HELP, posEmbedFlag } from './options';

export const IMPORT_USAGE = `usage: deit models import (--safetensors FILE | --random-init [--seed N]) --preset NAME
                          --labels FILE --name N [--img-size S [--pos-embed timm|deit]] [--alias A] [--registry DIR]

Turns a timm checkpoint into a published registry version: ONNX with both heads, checked by
onnxruntime, with the preset's preprocessing and a self-check sample in the manifest. The labels
file has one class name per line, in class-index order; a class count different from the
checkpoint's re-initialises the heads. --random-init publishes timm's initialisation instead
(untrained; the manifest says so), e.g. to bootstrap a registry.
${POS_EMBED_HELP}`;

export async function importModelCommand(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      safetensors: { type: 'string' },
      'random-init': { type: 'boolean' },
      seed: { type: 'string' },
      preset: { type: 'string' },
      labels: { type: 'string' },
      name: { type: 'string' },
      'img-size': { type: 'string' },
      'pos-embed': { type: 'string' },
      alias: { type: 'string' },
      registry: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    io.stdout.write(IMPORT_USAGE);
    return 0;
  }
  if (!(values.safetensors || values['random-init']) || !values.preset || !values.labels || !values.name) {
    io.stderr.write(
      `deit models import: --safetensors (or --random-init), --preset, --labels and --name are required\n${IMPORT_USAGE}`,
    );
    return 2;
  }
  if (values.safetensors && values['random-init']) {
    io.stderr.write('deit models import: --safetensors and --random-init exclude each other\n');
    return 2;
  }
  const seed = optionalIntFlag('--seed', values.seed, 0) ?? 0;
  const labels = (await readFile(values.labels, 'utf8')).split(/\r?\n/).filter((l) => l.trim() !== '');
  const imgSize = optionalIntFlag('--img-size', values['img-size'], 1);
  const posEmbedResampling = posEmbedFlag(values['pos-embed']);
  const resolved = presetWeights({
    preset: values.preset,
    ...(values.safetensors ? { safetensors: await readFile(values.safetensors) } : {}),
    numClasses: labels.length,
    seed,
    ...(imgSize !== undefined ? { imgSize } : {}),
    ...(posEmbedResampling !== undefined ? { posEmbedResampling } : {}),
  });
  const registry = await DirectoryRegistry.open(
    values.registry ?? io.env['DEIT_REGISTRY_DIR'] ?? DEFAULT_REGISTRY_DIR,
    {
      create: true,
    },
  );
  const version = await packageAndPublish(registry, values.name, {
    spec: resolved.spec,
    preset: values.preset,
    weights: resolved.weights,
    labels,
    input: resolved.input,
    lineage: {
      hyperparameters: values.safetensors
        ? { source: basename(values.safetensors), adapted: resolved.changes }
        : { source: `random-initialised (timm init, seed ${seed}); untrained`, adapted: [] },
    },
  });
  for (const change of resolved.changes) io.stdout.write(`note: ${change}\n`);
  io.stdout.write(`published ${version.model}:${version.version}\n`);
  if (values.alias) {
    await registry.setAlias(version.model, values.alias, version.version, { reason: 'deit models import' });
    io.stdout.write(`${version.model}@${values.alias} → ${version.version}\n`);
  }
  return 0;
}
