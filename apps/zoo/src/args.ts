import { DEFAULT_REGISTRY_DIR } from '@deit-serve/config';
import { isZooStage, stageKind, ZOO_KINDS, ZOO_STAGES, type ZooStage } from '@deit-serve/zoo';

export interface ZooArgs {
  /** Training stages to run (in the zoo's order); empty with `evaluateOnly`. */
  readonly stages: readonly ZooStage[];
  readonly evaluateOnly: boolean;
  readonly registryDir: string;
  readonly recordsDir: string;
  readonly workDir: string;
  readonly datasetDir?: string;
  readonly resultsPath: string;
  readonly help: boolean;
}

export const ZOO_USAGE = `Usage: npm run zoo -- [STAGE...] [options]

Trains the default models on Fashion-MNIST, publishes them to the registry, evaluates every published
file on the 10k test images through onnxruntime and writes RESULTS.md. Finished runs are skipped
unless their recipe changed (then they train a new version); an interrupted run resumes from its last
checkpoint.

Runs: ${ZOO_STAGES.join(', ')} (default: all, in this order). A kind (${ZOO_KINDS.join(', ')}) means
every run of it (so "hard" runs hard, hard-seed1 and hard-seed2). "evaluate" only re-evaluates.

Options:
  --registry DIR   registry to publish to (default: $DEIT_REGISTRY_DIR, else ./${DEFAULT_REGISTRY_DIR})
  --records DIR    finished-stage records (default: ./zoo)
  --work DIR       checkpoints (default: ./var/zoo)
  --dataset DIR    Fashion-MNIST IDX files (default: /usr/share/datasets/fashion-mnist)
  --results FILE   results page (default: ./RESULTS.md)
  -h, --help       this text`;

/** Parses the command line; throws with a message naming the bad argument. */
export function parseZooArgs(argv: readonly string[], env: NodeJS.ProcessEnv): ZooArgs {
  const stages: ZooStage[] = [];
  let evaluateOnly = false;
  let help = false;
  const values: Record<string, string> = {};
  const flags = new Set(['--registry', '--records', '--work', '--dataset', '--results']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') help = true;
    else if (flags.has(arg)) {
      const value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new Error(`${arg} needs a value`);
      values[arg] = value;
    } else if (arg === 'evaluate') evaluateOnly = true;
    // A kind first: `hard` means every hard run (seed 0's run is also named `hard`).
    else if ((ZOO_KINDS as readonly string[]).includes(arg))
      stages.push(...ZOO_STAGES.filter((s) => stageKind(s) === arg));
    else if (isZooStage(arg)) stages.push(arg);
    else
      throw new Error(
        `unknown argument ${JSON.stringify(arg)}; runs: ${ZOO_STAGES.join(', ')}; kinds: ${ZOO_KINDS.join(', ')}; evaluate`,
      );
  }
  if (evaluateOnly && stages.length > 0) throw new Error('"evaluate" runs no training stage; give it alone');
  return {
    stages: evaluateOnly
      ? []
      : stages.length === 0
        ? ZOO_STAGES
        : ZOO_STAGES.filter((s) => stages.includes(s)),
    evaluateOnly,
    registryDir: values['--registry'] ?? env['DEIT_REGISTRY_DIR'] ?? DEFAULT_REGISTRY_DIR,
    recordsDir: values['--records'] ?? 'zoo',
    workDir: values['--work'] ?? 'var/zoo',
    ...(values['--dataset'] !== undefined && { datasetDir: values['--dataset'] }),
    resultsPath: values['--results'] ?? 'RESULTS.md',
    help,
  };
}
