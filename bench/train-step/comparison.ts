/**
 * `npm run bench:train-step` without stack flags: issue 19's comparison in one invocation. Each
 * measurement runs in its own child process (the tfjs backend is process-global, and each child's
 * peak RSS is its own), one after another so that they never share the two cores: DeiT-Ti⚗ on
 * PyTorch, native TensorFlow and wasm, then the zoo's teacher and student on native and wasm. Then
 * one table with the ratios judged against the targets (results.ts).
 *
 * Usage: bench/train-step/run.sh [--steps 4] [--warmup 1] [--python /usr/bin/python3] [--quick]
 */
import { spawn } from 'node:child_process';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { ZOO_TEACHER_SPEC, zooStudentSpec } from '../../libs/zoo/src/recipes';
import {
  comparisonPlan,
  comparisonTable,
  exitCode,
  MODEL_TITLES,
  parseChildReport,
  parseComparisonArgs,
  type PlannedRun,
  REPORT_PREFIX,
  type RunOutcome,
  type ZooBatches,
} from './results';

/** A child's whole run; the slowest (the teacher on wasm, 5 steps) takes a minute or two here. */
const CHILD_TIMEOUT_MS = 30 * 60_000;

function zooBatches(): ZooBatches {
  const student = zooStudentSpec('hard', 'teacher', 'dataset').optimization?.batchSize;
  if (student === undefined) throw new Error("the zoo's student recipe has no batch size");
  return { teacher: ZOO_TEACHER_SPEC.batchSize, student };
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

/** Runs one planned child, echoing its output (indented) but not its report line. */
function runChild(run: PlannedRun): Promise<RunOutcome> {
  const args = [join(__dirname, 'run.js'), ...run.args, '--report'];
  console.log(
    `\n== ${run.model} on ${run.runtime}: bench/train-step/run.sh ${[...run.args, '--report'].join(' ')}`,
  );
  console.log(`   load average ${loadAverage()}`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines)
        if (!line.startsWith(REPORT_PREFIX)) console.log(line === '' ? '' : `   ${line}`);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ ...run, error: error.message });
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      if (status !== 0) {
        resolve({ ...run, error: `child exited with ${signal ?? `status ${status}`}` });
        return;
      }
      try {
        resolve({ ...run, report: parseChildReport(stdout) });
      } catch (error) {
        resolve({ ...run, error: error instanceof Error ? error.message : String(error) });
      }
    });
  });
}

export async function main(argv: readonly string[]): Promise<number> {
  const options = parseComparisonArgs(argv);
  const plan = comparisonPlan(options, zooBatches());
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  console.log(
    `train-step comparison, ${new Date().toISOString()}: ${availableParallelism()} × ${cpu}, ` +
      `${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.versions.node}; load average ${loadAverage()}`,
  );
  console.log(
    `${plan.length} child processes, one at a time; ${options.warmup} warm-up + ${options.steps} measured step(s) each` +
      (options.quick ? ' (--quick: batch 8, a smoke run, not a measurement)' : ''),
  );
  const outcomes: RunOutcome[] = [];
  for (const run of plan) outcomes.push(await runChild(run));
  console.log(`\nload average at the end ${loadAverage()}\n`);
  for (const [model, title] of Object.entries(MODEL_TITLES)) console.log(`${model}: ${title}`);
  console.log('');
  console.log(comparisonTable(outcomes, !options.quick));
  return exitCode(outcomes, !options.quick);
}
