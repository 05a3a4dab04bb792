/**
 * The pure half of `npm run bench:train-step`'s comparison (comparison.ts runs the children): which
 * child processes it runs, the report line each child prints, the statistics, issue 19's targets
 * judged as PASS/FAIL, and the table. Nothing here touches tfjs, processes or the file system.
 */

/** One stack in one child process; `tfjs-local` and `tfjs-dp` on the backend the child was given. */
export type Stack = 'tfjs-local' | 'tfjs-dp' | 'torch';
export type Model = 'deit-ti' | 'teacher' | 'student';
/** Where a step runs, as the table and the targets name it. */
export type Runtime = 'pytorch' | 'native' | 'wasm';

export const MODEL_TITLES: Readonly<Record<Model, string>> = {
  'deit-ti': 'DeiT-Ti⚗ (deit_tiny_distilled_patch4_32, soft distillation)',
  teacher: "the zoo's teacher (regnety_fmnist_28, cross-entropy)",
  student: "the zoo's student (deit_pico_distilled_patch7_28, hard distillation)",
};

/** Issue 19's acceptance for `npm run bench:train-step`. */
export const TARGETS = {
  /** native DeiT-Ti⚗ step ÷ PyTorch's, at most (aim: parity). */
  nativeOverTorch: 2.0,
  /** wasm teacher step ÷ native teacher step, at least. */
  teacherWasmOverNative: 1.5,
  /** wasm student step ÷ native student step, at least: native no slower. */
  studentWasmOverNative: 1.0,
  /** Peak resident set of each native training process, at most. */
  nativePeakRssBytes: 2 * 2 ** 30,
} as const;

/** The flags the comparison itself takes; any other flag selects a single-stack run (train-step.ts). */
const COMPARISON_FLAGS = new Set(['--quick', '--steps', '--warmup', '--python']);

export function isComparisonInvocation(argv: readonly string[]): boolean {
  return argv.filter((a) => a.startsWith('--')).every((a) => COMPARISON_FLAGS.has(a));
}

export interface ComparisonOptions {
  readonly steps: number;
  readonly warmup: number;
  readonly python: string | undefined;
  /** Smoke run: one step, no warm-up, batch 8 everywhere; prints the table but judges nothing. */
  readonly quick: boolean;
}

export function parseComparisonArgs(argv: readonly string[]): ComparisonOptions {
  let steps: number | undefined;
  let warmup: number | undefined;
  let python: string | undefined;
  let quick = false;
  const count = (flag: string, value: string | undefined, min: number): number => {
    const n = Number(value);
    if (value === undefined || !Number.isInteger(n) || n < min)
      throw new Error(`${flag} needs an integer ≥ ${min}, got ${value ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    switch (flag) {
      case '--quick':
        quick = true;
        break;
      case '--steps':
        steps = count(flag, argv[++i], 1);
        break;
      case '--warmup':
        warmup = count(flag, argv[++i], 0);
        break;
      case '--python': {
        python = argv[++i];
        if (python === undefined) throw new Error('--python needs a path');
        break;
      }
      default:
        throw new Error(`unknown option ${flag} (the comparison takes --quick, --steps, --warmup, --python)`);
    }
  }
  return { steps: steps ?? (quick ? 1 : 4), warmup: warmup ?? (quick ? 0 : 1), python, quick };
}

/** The batch sizes the zoo trains with (libs/zoo's recipes; comparison.ts reads them from there). */
export interface ZooBatches {
  readonly teacher: number;
  readonly student: number;
}

/** One child process of the comparison: `args` go to train-step.ts (with `--report`). */
export interface PlannedRun {
  readonly model: Model;
  readonly runtime: Runtime;
  readonly args: readonly string[];
}

export const DEIT_TI_BATCH = 64;
const QUICK_BATCH = 8;
/** The trainer's wasm path on this 2-core machine: one worker per core (`plannedWorkers`). */
export const WASM_WORKERS = 2;

/**
 * The runs, one process each, in order: DeiT-Ti⚗ on PyTorch, native and wasm, then the zoo's teacher
 * and student on native and wasm. Native runs one process (the trainer's choice there: TensorFlow's
 * thread pools use the cores), wasm data-parallel workers; micro-batches as the trainers pick them.
 */
export function comparisonPlan(options: ComparisonOptions, zoo: ZooBatches): PlannedRun[] {
  const batch = (n: number): string[] => ['--batch', String(options.quick ? QUICK_BATCH : n)];
  const common = ['--steps', String(options.steps), '--warmup', String(options.warmup)];
  const native = ['--backend', 'tensorflow', '--only', 'tfjs-local', '--micro', 'auto'];
  const wasm = [
    '--backend',
    'wasm',
    '--only',
    'tfjs-dp',
    '--workers',
    String(WASM_WORKERS),
    '--micro',
    'auto',
  ];
  const python = options.python === undefined ? [] : ['--python', options.python];
  const deit = [...common, ...batch(DEIT_TI_BATCH)];
  const teacher = [...common, '--teacher', 'regnety_fmnist_28', ...batch(zoo.teacher)];
  const student = [
    ...common,
    '--preset',
    'deit_pico_distilled_patch7_28',
    '--loss',
    'hard',
    ...batch(zoo.student),
  ];
  return [
    { model: 'deit-ti', runtime: 'pytorch', args: [...deit, '--only', 'torch', ...python] },
    { model: 'deit-ti', runtime: 'native', args: [...deit, ...native] },
    { model: 'deit-ti', runtime: 'wasm', args: [...deit, ...wasm] },
    { model: 'teacher', runtime: 'native', args: [...teacher, ...native] },
    { model: 'teacher', runtime: 'wasm', args: [...teacher, ...wasm] },
    { model: 'student', runtime: 'native', args: [...student, ...native] },
    { model: 'student', runtime: 'wasm', args: [...student, ...wasm] },
  ];
}

/** What a child prints as its last line with `--report`: the measured stack and the process's peak. */
export interface ChildReport {
  readonly stack: Stack;
  /** e.g. `tfjs-tensorflow, 1 process, micro-batch 16` or PyTorch's version, threads and BLAS. */
  readonly label: string;
  readonly batch: number;
  /** Wall-clock ms of each measured step. */
  readonly timesMs: readonly number[];
  /** VmHWM of the child process (PyTorch: the Python process), bytes. */
  readonly peakRssBytes: number | undefined;
  /** Why the stack did not run (PyTorch absent, or not on OpenBLAS). */
  readonly skipped?: string;
}

export const REPORT_PREFIX = 'train-step report: ';

export function reportLine(report: ChildReport): string {
  return REPORT_PREFIX + JSON.stringify(report);
}

/** The report among a child's output lines; throws with what was wrong. */
export function parseChildReport(stdout: string): ChildReport {
  const line = stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(REPORT_PREFIX));
  if (line === undefined) throw new Error(`no "${REPORT_PREFIX.trim()}" line in the child's output`);
  const value = JSON.parse(line.slice(REPORT_PREFIX.length)) as Partial<ChildReport>;
  const stacks: readonly string[] = ['tfjs-local', 'tfjs-dp', 'torch'];
  if (
    typeof value.stack !== 'string' ||
    !stacks.includes(value.stack) ||
    typeof value.label !== 'string' ||
    typeof value.batch !== 'number' ||
    !Array.isArray(value.timesMs) ||
    !value.timesMs.every((t) => typeof t === 'number' && Number.isFinite(t)) ||
    (value.peakRssBytes !== undefined && typeof value.peakRssBytes !== 'number')
  )
    throw new Error(`malformed report: ${line}`);
  if (value.skipped === undefined && value.timesMs.length === 0)
    throw new Error(`report without measured steps: ${line}`);
  return value as ChildReport;
}

/** Median (the lower middle for an even count, so always a measured step) and minimum. */
export function stats(samples: readonly number[]): { median: number; min: number } {
  if (samples.length === 0) throw new Error('no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: sorted[Math.floor((sorted.length - 1) / 2)], min: sorted[0] };
}

/** A planned run's outcome: its report, or why the child gave none. */
export type RunOutcome = PlannedRun & ({ readonly report: ChildReport } | { readonly error: string });

export type Verdict = 'PASS' | 'FAIL' | 'n/a';

export interface Check {
  readonly name: string;
  /** Median-based ratio (or GiB for memory), undefined where a side is missing. */
  readonly value: number | undefined;
  /** The same from the fastest steps, for reference. */
  readonly valueMin?: number;
  readonly target: string;
  readonly verdict: Verdict;
  readonly note?: string;
}

function measured(outcomes: readonly RunOutcome[], model: Model, runtime: Runtime): ChildReport | string {
  const run = outcomes.find((o) => o.model === model && o.runtime === runtime);
  if (run === undefined) return 'not run';
  if ('error' in run) return run.error;
  if (run.report.skipped !== undefined) return run.report.skipped;
  return run.report;
}

function ratioCheck(
  name: string,
  numerator: ChildReport | string,
  denominator: ChildReport | string,
  target: string,
  passes: (ratio: number) => boolean,
): Check {
  if (typeof numerator === 'string' || typeof denominator === 'string')
    return {
      name,
      value: undefined,
      target,
      verdict: 'n/a',
      note: [numerator, denominator].filter((s) => typeof s === 'string').join('; '),
    };
  const n = stats(numerator.timesMs);
  const d = stats(denominator.timesMs);
  const value = n.median / d.median;
  return { name, value, valueMin: n.min / d.min, target, verdict: passes(value) ? 'PASS' : 'FAIL' };
}

/** Issue 19's targets on the medians of one run; a missing side is `n/a`, which is not a pass. */
export function judge(outcomes: readonly RunOutcome[]): Check[] {
  const get = (model: Model, runtime: Runtime): ChildReport | string => measured(outcomes, model, runtime);
  const checks = [
    ratioCheck(
      'DeiT-Ti⚗ native ÷ PyTorch',
      get('deit-ti', 'native'),
      get('deit-ti', 'pytorch'),
      `≤ ${TARGETS.nativeOverTorch.toFixed(2)}`,
      (r) => r <= TARGETS.nativeOverTorch,
    ),
    ratioCheck(
      'teacher wasm ÷ native',
      get('teacher', 'wasm'),
      get('teacher', 'native'),
      `≥ ${TARGETS.teacherWasmOverNative.toFixed(2)}`,
      (r) => r >= TARGETS.teacherWasmOverNative,
    ),
    ratioCheck(
      'student wasm ÷ native',
      get('student', 'wasm'),
      get('student', 'native'),
      `≥ ${TARGETS.studentWasmOverNative.toFixed(2)}`,
      (r) => r >= TARGETS.studentWasmOverNative,
    ),
  ];
  const limitGiB = TARGETS.nativePeakRssBytes / 2 ** 30;
  for (const model of ['deit-ti', 'teacher', 'student'] as const) {
    const report = get(model, 'native');
    const name = `${model} native peak RSS, GiB`;
    const target = `≤ ${limitGiB.toFixed(2)}`;
    if (typeof report === 'string' || report.peakRssBytes === undefined)
      checks.push({
        name,
        value: undefined,
        target,
        verdict: 'n/a',
        note: typeof report === 'string' ? report : 'VmHWM unreadable',
      });
    else
      checks.push({
        name,
        value: report.peakRssBytes / 2 ** 30,
        target,
        verdict: report.peakRssBytes <= TARGETS.nativePeakRssBytes ? 'PASS' : 'FAIL',
      });
  }
  return checks;
}

const RUNTIME_NAMES: Readonly<Record<Runtime, string>> = {
  pytorch: 'PyTorch',
  native: 'native',
  wasm: 'wasm',
};

function ms(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
}

/**
 * Per model and runtime: median and min ms per step and the child's peak RSS; then the targets.
 * `judged: false` (a `--quick` smoke run) prints the ratios without verdicts.
 */
export function comparisonTable(outcomes: readonly RunOutcome[], judged: boolean): string {
  const header = ['model', 'stack', 'median ms', 'min ms', 'peak RSS GiB', 'batch', 'what ran'];
  const rows = outcomes.map((o) => {
    const base = [o.model, RUNTIME_NAMES[o.runtime]];
    if ('error' in o) return [...base, 'failed', '', '', '', o.error];
    const r = o.report;
    const rss = r.peakRssBytes === undefined ? 'n/a' : (r.peakRssBytes / 2 ** 30).toFixed(2);
    if (r.skipped !== undefined) return [...base, 'skipped', '', rss, String(r.batch), r.skipped];
    const s = stats(r.timesMs);
    return [...base, ms(s.median), ms(s.min), rss, String(r.batch), r.label];
  });
  const widths = header
    .slice(0, -1)
    .map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const lines = [pad(header, widths), ...rows.map((r) => pad(r, widths))];
  const checks = judge(outcomes);
  const nameWidth = Math.max(...checks.map((c) => c.name.length));
  lines.push(
    '',
    judged ? "issue 19's targets (medians; min-step ratio in brackets):" : 'ratios (--quick: not judged):',
  );
  for (const c of checks) {
    const value =
      c.value === undefined
        ? 'n/a'
        : `${c.value.toFixed(2)}${c.valueMin === undefined ? '' : ` (${c.valueMin.toFixed(2)})`}`;
    const verdict = judged ? `  ${c.verdict}` : '';
    lines.push(
      `  ${c.name.padEnd(nameWidth)}  ${value.padStart(11)}  target ${c.target}${verdict}${c.note === undefined ? '' : `  (${c.note})`}`,
    );
  }
  return lines.join('\n');
}

/** The comparison's exit code: 0 only if every target was measured and met (or nothing was judged). */
export function exitCode(outcomes: readonly RunOutcome[], judged: boolean): number {
  if (outcomes.some((o) => 'error' in o)) return 1;
  if (!judged) return 0;
  return judge(outcomes).every((c) => c.verdict === 'PASS') ? 0 : 1;
}
