import { exportDeitOnnx, exportRegNetYOnnx } from '@deit-serve/model';
import { presetWeights } from '@deit-serve/packaging';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type CommandIo, optionalIntFlag, POS_EMBED_HELP, posEmbedFlag } from './options';

export const EXPORT_USAGE = `usage: deit export --preset NAME [--weights FILE.safetensors] [--num-classes N] [--img-size S [--pos-embed timm|deit]] [--seed N] --out FILE.onnx

Exports a DeiT or RegNetY preset to ONNX (opset 17; DeiT outputs cls_logits and dist_logits,
RegNetY outputs logits; initializers carry timm's weight names). Without --weights the model is
random-initialised like timm from --seed (default 0).
${POS_EMBED_HELP}`;

export async function exportCommand(argv: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      preset: { type: 'string' },
      weights: { type: 'string' },
      'num-classes': { type: 'string' },
      'img-size': { type: 'string' },
      'pos-embed': { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    io.stdout.write(EXPORT_USAGE);
    return 0;
  }
  if (!values.preset || !values.out) {
    io.stderr.write(`deit export: --preset and --out are required\n${EXPORT_USAGE}`);
    return 2;
  }
  const numClasses = optionalIntFlag('--num-classes', values['num-classes'], 1);
  const imgSize = optionalIntFlag('--img-size', values['img-size'], 1);
  const posEmbedResampling = posEmbedFlag(values['pos-embed']);
  const seed = optionalIntFlag('--seed', values.seed, 0) ?? 0;
  const resolved = presetWeights({
    preset: values.preset,
    ...(values.weights ? { safetensors: await readFile(values.weights) } : {}),
    ...(numClasses !== undefined ? { numClasses } : {}),
    ...(imgSize !== undefined ? { imgSize } : {}),
    ...(posEmbedResampling !== undefined ? { posEmbedResampling } : {}),
    seed,
  });
  const onnx =
    resolved.spec.architecture === 'deit'
      ? exportDeitOnnx(resolved.spec.config, resolved.weights, { preset: values.preset })
      : exportRegNetYOnnx(resolved.spec.config, resolved.weights, { preset: values.preset });
  await writeFile(values.out, onnx);
  for (const change of resolved.changes) io.stdout.write(`note: ${change}\n`);
  io.stdout.write(
    `${values.out}: ${values.preset}, ${resolved.spec.config.numClasses} classes, ` +
      `${resolved.randomInit ? `random-initialised (seed ${seed})` : `weights from ${values.weights}`}, ` +
      `${(onnx.byteLength / 1e6).toFixed(1)} MB\n`,
  );
  return 0;
}
