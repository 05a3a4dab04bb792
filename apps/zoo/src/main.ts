/**
 * `npm run zoo`: trains, publishes and evaluates the default models (see @deit-serve/zoo).
 * Ctrl-C stops at the next step with a checkpoint; the next run resumes.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { FASHION_MNIST_DIR, loadFashionMnist } from '@deit-serve/datasets';
import { gitCommit } from '@deit-serve/finetune';
import { DirectoryRegistry } from '@deit-serve/registry';
import {
  evaluateZoo,
  keepHandWritten,
  PREVIOUS_GENERATION_DIR,
  renderResultsMarkdown,
  runZoo,
  type ZooResults,
} from '@deit-serve/zoo';
import { parseZooArgs, ZOO_USAGE } from './args';

function machine(): string {
  const cores = cpus();
  // The backend each run trained on is in its record (\`trained on\` in RESULTS.md).
  return `${cores.length} × ${cores[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}, no GPU used (onnxruntime CPU for evaluation)`;
}

/** Generation 1's evaluated results (`<records>/generation-1/results.json`), shown for comparison. */
async function readPreviousGeneration(recordsDir: string): Promise<ZooResults | undefined> {
  try {
    return JSON.parse(
      await readFile(join(recordsDir, PREVIOUS_GENERATION_DIR, 'results.json'), 'utf8'),
    ) as ZooResults;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function main(): Promise<number> {
  const args = parseZooArgs(process.argv.slice(2), process.env);
  if (args.help) {
    process.stdout.write(`${ZOO_USAGE}\n`);
    return 0;
  }
  const log = (message: string): void => {
    process.stdout.write(`[zoo ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
  };
  const controller = new AbortController();
  process.once('SIGINT', () => {
    log('stopping at the next step (a checkpoint is kept); run again to resume');
    controller.abort(new Error('interrupted'));
  });
  const registry = await DirectoryRegistry.open(args.registryDir);
  const host = machine();
  if (!args.evaluateOnly) {
    await runZoo({
      registry,
      recordsDir: args.recordsDir,
      workDir: args.workDir,
      ...(args.datasetDir !== undefined && { datasetDir: args.datasetDir }),
      stages: args.stages,
      log,
      signal: controller.signal,
      machine: host,
    });
  }
  log('evaluating the published files on the 10k test images (onnxruntime)');
  const test = (await loadFashionMnist(args.datasetDir ?? FASHION_MNIST_DIR, 'test')).dataset;
  const results = await evaluateZoo({
    registry,
    recordsDir: args.recordsDir,
    test,
    machine: host,
    gitCommit: await gitCommit(),
    log,
  });
  await writeFile(join(args.recordsDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  // A page's hand-written part (from HAND_WRITTEN_MARKER on) is kept; no page yet is fine.
  const previous = await readFile(args.resultsPath, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  const page = `${renderResultsMarkdown(results, 'npm run zoo', await readPreviousGeneration(args.recordsDir))}\n`;
  await writeFile(args.resultsPath, keepHandWritten(page, previous));
  log(`wrote ${args.resultsPath}`);
  return 0;
}

main()
  .then((code) => {
    process.exitCode = code;
  })
  .catch((error: unknown) => {
    process.stderr.write(`zoo: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
