import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { workspaceRoot } from './workspace';

// Loaded by path: bench/ is not a project, so the module-boundary lint refuses a static import; the
// type still comes from the module itself.
type Results = typeof import('../../bench/train-step/results');
type ChildReport = import('../../bench/train-step/results').ChildReport;
type RunOutcome = import('../../bench/train-step/results').RunOutcome;
let comparisonPlan: Results['comparisonPlan'];
let comparisonTable: Results['comparisonTable'];
let exitCode: Results['exitCode'];
let isComparisonInvocation: Results['isComparisonInvocation'];
let judge: Results['judge'];
let parseChildReport: Results['parseChildReport'];
let parseComparisonArgs: Results['parseComparisonArgs'];
let reportLine: Results['reportLine'];
let stats: Results['stats'];
let TARGETS: Results['TARGETS'];
beforeAll(async () => {
  ({
    comparisonPlan,
    comparisonTable,
    exitCode,
    isComparisonInvocation,
    judge,
    parseChildReport,
    parseComparisonArgs,
    reportLine,
    stats,
    TARGETS,
  } = (await import(join(workspaceRoot, 'bench', 'train-step', 'results.ts'))) as Results);
});

/**
 * The pure half of `npm run bench:train-step`'s comparison (bench/train-step/results.ts), and one
 * child's report line from a real (tiny) run. The comparison itself runs seven children for minutes.
 */
const GiB = 2 ** 30;
const ZOO = { teacher: 128, student: 64 };

function report(timesMs: number[], peakRssBytes: number | undefined = GiB, skipped?: string): ChildReport {
  return {
    stack: 'tfjs-local',
    label: 'x',
    batch: 64,
    timesMs,
    peakRssBytes,
    ...(skipped ? { skipped } : {}),
  };
}

/** A whole comparison's outcomes, medians in ms per (model, runtime). */
function outcomes(ms: {
  torch: number;
  deitNative: number;
  deitWasm: number;
  teacherNative: number;
  teacherWasm: number;
  studentNative: number;
  studentWasm: number;
  nativeRss?: number;
}): RunOutcome[] {
  const rss = ms.nativeRss ?? GiB;
  // Three steps around each median: the median is the middle one, the min 10 % under it.
  const steps = (m: number): number[] => [m * 1.2, m, m * 0.9];
  return [
    { model: 'deit-ti', runtime: 'pytorch', args: [], report: report(steps(ms.torch), 0.4 * GiB) },
    { model: 'deit-ti', runtime: 'native', args: [], report: report(steps(ms.deitNative), rss) },
    { model: 'deit-ti', runtime: 'wasm', args: [], report: report(steps(ms.deitWasm), 3 * GiB) },
    { model: 'teacher', runtime: 'native', args: [], report: report(steps(ms.teacherNative), 0.5 * GiB) },
    { model: 'teacher', runtime: 'wasm', args: [], report: report(steps(ms.teacherWasm), 0.5 * GiB) },
    { model: 'student', runtime: 'native', args: [], report: report(steps(ms.studentNative), 0.5 * GiB) },
    { model: 'student', runtime: 'wasm', args: [], report: report(steps(ms.studentWasm), 0.5 * GiB) },
  ];
}

const MEETING = {
  torch: 1000,
  deitNative: 1900,
  deitWasm: 4000,
  teacherNative: 1000,
  teacherWasm: 1600,
  studentNative: 500,
  studentWasm: 500,
};

describe('bench:train-step comparison (results.ts)', () => {
  it('runs the comparison for no flags or only its own, and a single stack for any other flag', () => {
    expect(isComparisonInvocation([])).toBe(true);
    expect(isComparisonInvocation(['--quick'])).toBe(true);
    expect(isComparisonInvocation(['--steps', '2', '--warmup', '0', '--python', '/usr/bin/python3'])).toBe(
      true,
    );
    expect(isComparisonInvocation(['--only', 'tfjs-dp', '--steps', '2'])).toBe(false);
    expect(isComparisonInvocation(['--backend', 'tensorflow'])).toBe(false);
    expect(isComparisonInvocation(['--preset', 'deit_pico_distilled_patch7_28', '--only', 'tfjs-dp'])).toBe(
      false,
    );
  });

  it('defaults to 1 warm-up + 4 measured steps, --quick to 1 + 0, and rejects bad input', () => {
    expect(parseComparisonArgs([])).toEqual({ steps: 4, warmup: 1, python: undefined, quick: false });
    expect(parseComparisonArgs(['--quick'])).toEqual({ steps: 1, warmup: 0, python: undefined, quick: true });
    expect(parseComparisonArgs(['--quick', '--steps', '3'])).toMatchObject({ steps: 3, warmup: 0 });
    expect(() => parseComparisonArgs(['--steps', '0'])).toThrow('--steps needs an integer ≥ 1, got 0');
    expect(() => parseComparisonArgs(['--warmup'])).toThrow('--warmup needs an integer ≥ 0, got nothing');
    expect(() => parseComparisonArgs(['--bogus'])).toThrow('unknown option --bogus');
  });

  it("plans seven children, one after another: PyTorch only on DeiT-Ti⚗, the zoo's batches, trainers' micro-batches", () => {
    const plan = comparisonPlan(parseComparisonArgs([]), ZOO);
    expect(plan.map((r) => `${r.model}/${r.runtime}`)).toEqual([
      'deit-ti/pytorch',
      'deit-ti/native',
      'deit-ti/wasm',
      'teacher/native',
      'teacher/wasm',
      'student/native',
      'student/wasm',
    ]);
    const flag = (args: readonly string[], name: string): string | undefined => args[args.indexOf(name) + 1];
    for (const run of plan) {
      // Every child measures exactly one stack, so that its peak RSS is that stack's.
      expect(run.args.filter((a) => a === '--only')).toHaveLength(1);
      expect(flag(run.args, '--steps')).toBe('4');
      expect(flag(run.args, '--warmup')).toBe('1');
      if (run.runtime === 'native') {
        expect(flag(run.args, '--backend')).toBe('tensorflow');
        expect(flag(run.args, '--only')).toBe('tfjs-local');
        expect(flag(run.args, '--micro')).toBe('auto');
      }
      if (run.runtime === 'wasm') {
        expect(flag(run.args, '--backend')).toBe('wasm');
        expect(flag(run.args, '--only')).toBe('tfjs-dp');
        expect(flag(run.args, '--workers')).toBe('2');
        expect(flag(run.args, '--micro')).toBe('auto');
      }
    }
    const of = (model: string): readonly string[] =>
      plan.find((r) => r.model === model && r.runtime === 'native')?.args ?? [];
    expect(flag(of('deit-ti'), '--batch')).toBe('64');
    expect(of('deit-ti')).not.toContain('--preset');
    expect(flag(of('teacher'), '--teacher')).toBe('regnety_fmnist_28');
    expect(flag(of('teacher'), '--batch')).toBe('128');
    expect(flag(of('student'), '--preset')).toBe('deit_pico_distilled_patch7_28');
    expect(flag(of('student'), '--loss')).toBe('hard');
    expect(flag(of('student'), '--batch')).toBe('64');
    expect(flag(plan[0]?.args ?? [], '--only')).toBe('torch');

    const quick = comparisonPlan(parseComparisonArgs(['--quick', '--python', '/opt/py']), ZOO);
    expect(quick.every((r) => flag(r.args, '--batch') === '8' && flag(r.args, '--steps') === '1')).toBe(true);
    expect(flag(quick[0]?.args ?? [], '--python')).toBe('/opt/py');
  });

  it("reads a child's report line among its output and rejects a missing or malformed one", () => {
    const r = report([1200, 1100], 1.5 * GiB);
    expect(parseChildReport(`step 0: 1200 ms\n${reportLine(r)}\n`)).toEqual(r);
    expect(() => parseChildReport('step 0: 1200 ms\n')).toThrow('no "train-step report:" line');
    expect(() =>
      parseChildReport(`${reportLine(r).replace('"timesMs":[1200,1100]', '"timesMs":"fast"')}`),
    ).toThrow('malformed report');
    expect(() => parseChildReport(reportLine(report([])))).toThrow('report without measured steps');
    // A skipped stack (no PyTorch here) reports no steps, and that is not malformed.
    expect(parseChildReport(reportLine(report([], undefined, 'torch absent'))).skipped).toBe('torch absent');
  });

  it('takes the lower middle as the median, so that the median is always a measured step', () => {
    expect(stats([4, 1, 3, 2])).toEqual({ median: 2, min: 1 });
    expect(stats([5, 9, 7])).toEqual({ median: 7, min: 5 });
    expect(() => stats([])).toThrow('no samples');
  });

  it('passes every target when each is met, on the medians, and exits 0', () => {
    const run = outcomes(MEETING);
    const checks = judge(run);
    expect(checks.map((c) => [c.name, c.verdict])).toEqual([
      ['DeiT-Ti⚗ native ÷ PyTorch', 'PASS'],
      ['teacher wasm ÷ native', 'PASS'],
      ['student wasm ÷ native', 'PASS'],
      ['deit-ti native peak RSS, GiB', 'PASS'],
      ['teacher native peak RSS, GiB', 'PASS'],
      ['student native peak RSS, GiB', 'PASS'],
    ]);
    expect(checks[0]?.value).toBeCloseTo(1.9, 10);
    expect(checks[1]?.value).toBeCloseTo(1.6, 10);
    // The student's target is "no slower": equal times pass.
    expect(checks[2]?.value).toBe(1);
    expect(exitCode(run, true)).toBe(0);
    // wasm's peak RSS (3 GiB here) is shown, not judged: the target is the native trainer's.
    expect(checks.some((c) => c.name.includes('wasm') && c.name.includes('RSS'))).toBe(false);
  });

  it('fails each target just past its limit, and exits 1', () => {
    const slowNative = judge(outcomes({ ...MEETING, deitNative: 2001 }));
    expect(slowNative[0]).toMatchObject({
      verdict: 'FAIL',
      target: `≤ ${TARGETS.nativeOverTorch.toFixed(2)}`,
    });
    expect(slowNative[0]?.value).toBeCloseTo(2.001, 10);
    expect(judge(outcomes({ ...MEETING, teacherWasm: 1490 }))[1]?.verdict).toBe('FAIL');
    expect(judge(outcomes({ ...MEETING, studentWasm: 499 }))[2]?.verdict).toBe('FAIL');
    const heavy = outcomes({ ...MEETING, nativeRss: 2 * GiB + 4096 });
    expect(judge(heavy)[3]).toMatchObject({ name: 'deit-ti native peak RSS, GiB', verdict: 'FAIL' });
    expect(exitCode(heavy, true)).toBe(1);
    expect(exitCode(outcomes({ ...MEETING, deitNative: 2001 }), true)).toBe(1);
  });

  it('prints the table with medians, mins, peak RSS and the verdicts', () => {
    const table = comparisonTable(outcomes({ ...MEETING, deitNative: 2500 }), true);
    const row = (model: string, stack: string): string[] =>
      table
        .split('\n')
        .find((l) => l.startsWith(`${model} `) && l.split(/\s{2,}/)[1] === stack)
        ?.split(/\s{2,}/) ?? [];
    expect(row('deit-ti', 'native').slice(0, 6)).toEqual([
      'deit-ti',
      'native',
      '2,500',
      '2,250',
      '1.00',
      '64',
    ]);
    expect(row('deit-ti', 'wasm')[4]).toBe('3.00');
    expect(table).toMatch(/DeiT-Ti⚗ native ÷ PyTorch\s+2\.50 \(2\.50\)\s+target ≤ 2\.00\s+FAIL/);
    expect(table).toMatch(/teacher wasm ÷ native\s+1\.60 \(1\.60\)\s+target ≥ 1\.50\s+PASS/);
    // A smoke run prints the ratios without verdicts and does not fail on them.
    const quick = comparisonTable(outcomes({ ...MEETING, deitNative: 2500 }), false);
    expect(quick).toContain('ratios (--quick: not judged)');
    expect(quick).not.toMatch(/PASS|FAIL/);
    expect(exitCode(outcomes({ ...MEETING, deitNative: 2500 }), false)).toBe(0);
  });

  it('judges a side that did not run as n/a, which is not a pass, and says why', () => {
    const run = outcomes(MEETING).map((o): RunOutcome =>
      o.runtime === 'pytorch'
        ? { ...o, report: report([], undefined, '/usr/bin/python3 not found') }
        : o.model === 'teacher' && o.runtime === 'wasm'
          ? { model: o.model, runtime: o.runtime, args: o.args, error: 'child exited with status 1' }
          : o,
    );
    const checks = judge(run);
    expect(checks[0]).toMatchObject({ verdict: 'n/a', note: '/usr/bin/python3 not found' });
    expect(checks[1]).toMatchObject({ verdict: 'n/a', note: 'child exited with status 1' });
    const table = comparisonTable(run, true);
    expect(table).toMatch(/deit-ti\s+PyTorch\s+skipped/);
    expect(table).toMatch(/teacher\s+wasm\s+failed\s+child exited with status 1/);
    expect(exitCode(run, true)).toBe(1);
    // A failed child fails even a smoke run.
    expect(exitCode(run, false)).toBe(1);
  });
});

describe('bench:train-step child report (a real run)', () => {
  it('prints one report line with the measured steps and the process peak RSS', () => {
    const stdout = execFileSync(
      process.execPath,
      [
        join(workspaceRoot, 'bench', 'train-step', 'run.js'),
        ...['--preset', 'deit_pico_distilled_patch7_28', '--loss', 'hard', '--only', 'tfjs-local'],
        ...[
          '--backend',
          'wasm',
          '--batch',
          '4',
          '--micro',
          'auto',
          '--steps',
          '2',
          '--warmup',
          '0',
          '--report',
        ],
      ],
      { encoding: 'utf8', cwd: workspaceRoot },
    );
    const r = parseChildReport(stdout);
    expect(r).toMatchObject({ stack: 'tfjs-local', label: 'tfjs-wasm, 1 process, micro-batch 4', batch: 4 });
    expect(r.timesMs).toHaveLength(2);
    expect(r.timesMs.every((t) => t > 0)).toBe(true);
    // VmHWM of a Node process that loaded tfjs: well over 50 MiB, well under the 2 GiB target.
    expect(r.peakRssBytes).toBeGreaterThan(50 * 2 ** 20);
    expect(r.peakRssBytes).toBeLessThan(2 * GiB);
  });

  it('refuses --report for more than one stack', () => {
    expect(() =>
      execFileSync(
        process.execPath,
        [join(workspaceRoot, 'bench', 'train-step', 'run.js'), '--only', 'tfjs-local,tfjs-dp', '--report'],
        { encoding: 'utf8', cwd: workspaceRoot, stdio: 'pipe' },
      ),
    ).toThrow('--report measures one stack per process: name it with --only');
  });
});
