import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { workspaceRoot } from './workspace';

/**
 * The pure parts of `npm run bench:peers` (bench/peers/results.mjs). The harness itself needs k6, a
 * KServe virtual environment and minutes of two servers under load, so it is not run here.
 */
interface Run {
  throughput: number;
  p50: number;
  p99: number;
  ok: number;
  failed: number;
  cpuMsPerCall?: number;
}
interface Combined {
  throughput: number;
  p50: number;
  p99: number;
  cpuMsPerCall: number;
  failed: number;
  reps: number;
}
interface Side {
  byConcurrency: Map<number, Combined>;
  peakRssMb: number;
}
interface Check {
  name: string;
  ratio: number;
  target: string;
  pass: boolean;
}
interface ResultsModule {
  TARGETS: { throughputRatio: number; p99RatioAtC1: number; rssRatio: number };
  parseK6Summary(summary: unknown): Run;
  median(values: number[]): number;
  combineRepetitions(runs: Run[]): Combined;
  judge(deit: Side, kserve: Side): Check[];
  resultTable(servers: (Side & { label: string })[], concurrencies: number[]): string;
}

let results: ResultsModule;
beforeAll(async () => {
  results = (await import(
    pathToFileURL(join(workspaceRoot, 'bench', 'peers', 'results.mjs')).href
  )) as ResultsModule;
});

/** What k6 v1.8.1's handleSummary receives, reduced to the fields the harness reads. */
function k6Summary(ok: number, failed: number, durationMs: number, med: number, p99: number): unknown {
  return {
    state: { testRunDurationMs: durationMs },
    metrics: {
      grpc_req_duration: { type: 'trend', contains: 'time', values: { med, 'p(99)': p99 } },
      infer_ok: { type: 'counter', values: { count: ok, rate: ok / (durationMs / 1000) } },
      ...(failed ? { infer_failed: { type: 'counter', values: { count: failed, rate: 0 } } } : {}),
    },
  };
}

const combined = (throughput: number, p99 = 10, cpuMsPerCall = NaN): Combined => ({
  throughput,
  p50: p99 / 2,
  p99,
  cpuMsPerCall,
  failed: 0,
  reps: 3,
});
const side = (entries: [number, Combined][], peakRssMb: number): Side => ({
  byConcurrency: new Map(entries),
  peakRssMb,
});

describe('bench:peers results', () => {
  it('reads throughput from successful calls over the run, latency from grpc_req_duration', () => {
    expect(results.parseK6Summary(k6Summary(300, 0, 10_000, 25.5, 41.2))).toEqual({
      throughput: 30,
      p50: 25.5,
      p99: 41.2,
      ok: 300,
      failed: 0,
    });
    // A failed call is counted, not turned into throughput.
    const withFailures = results.parseK6Summary(k6Summary(90, 10, 10_000, 20, 30));
    expect(withFailures.throughput).toBe(9);
    expect(withFailures.failed).toBe(10);
  });

  it('refuses a summary in which no ModelInfer call ran', () => {
    expect(() => results.parseK6Summary({ state: { testRunDurationMs: 1000 }, metrics: {} })).toThrow(
      /grpc_req_duration/,
    );
    expect(() => results.parseK6Summary(undefined)).toThrow(/did any ModelInfer call run/);
  });

  it('takes the median of the repetitions and sums their failures', () => {
    expect(results.median([3, 1, 2])).toBe(2);
    expect(results.median([4, 1, 3, 2])).toBe(2.5);
    expect(results.median([])).toBeNaN();
    const run = (throughput: number, p99: number, failed = 0, cpuMsPerCall?: number): Run => ({
      throughput,
      p50: p99 / 2,
      p99,
      ok: 1,
      failed,
      cpuMsPerCall,
    });
    expect(results.combineRepetitions([run(30, 50, 0, 31), run(10, 90, 2, 36), run(20, 40, 0, 33)])).toEqual({
      throughput: 20,
      p50: 25,
      p99: 50,
      cpuMsPerCall: 33,
      failed: 2,
      reps: 3,
    });
    // Without CPU figures (no /proc) the column says so instead of inventing a number.
    expect(results.combineRepetitions([run(30, 50)]).cpuMsPerCall).toBeNaN();
  });

  it("judges deit/KServe against issue 26's targets: throughput >= 1 per concurrency, c=1 p99 <= 1, RSS <= 1.1", () => {
    const deit = side(
      [
        [1, combined(30, 40)],
        [8, combined(48)],
        [32, combined(47.4)],
      ],
      348,
    );
    const kserve = side(
      [
        [1, combined(33.8, 26)],
        [8, combined(43.7)],
        [32, combined(43.1)],
      ],
      267,
    );
    const checks = results.judge(deit, kserve);
    expect(checks.map(({ name, pass }) => [name, pass])).toEqual([
      ['throughput c=1', false],
      ['throughput c=8', true],
      ['throughput c=32', true],
      ['p99 c=1', false],
      ['peak RSS', false],
    ]);
    expect(checks[0].ratio).toBeCloseTo(30 / 33.8, 10);
    expect(checks[3].ratio).toBeCloseTo(40 / 26, 10);
    expect(checks[4].ratio).toBeCloseTo(348 / 267, 10);
  });

  it('passes at exactly the targets, and leaves out the c=1 p99 when c=1 was not measured', () => {
    const kserveRss = 200;
    const at = results.judge(
      side([[1, combined(40, 30)]], kserveRss * results.TARGETS.rssRatio),
      side([[1, combined(40, 30)]], kserveRss),
    );
    expect(at.every((c) => c.pass)).toBe(true);
    const noC1 = results.judge(side([[8, combined(50)]], 100), side([[8, combined(40)]], 100));
    expect(noC1.map((c) => c.name)).toEqual(['throughput c=8', 'peak RSS']);
  });

  it('prints one row per server: img/s, p50, p99 per concurrency, peak RSS, CPU per call and failures', () => {
    const table = results.resultTable(
      [
        { label: 'deit-serve', ...side([[1, combined(31.84, 40, 34.62)]], 347.6) },
        { label: 'KServe', ...side([[1, combined(33.8, 26)]], 267) },
      ],
      [1],
    );
    const lines = table.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/c=1 img\/s, p50, p99 ms\s+peak RSS MiB\s+CPU ms\/call c=1\s+failed$/);
    expect(lines[1]).toMatch(/^deit-serve\s+31\.8, 20\.0, 40\.0\s+348\s+34\.6\s+0$/);
    expect(lines[2]).toMatch(/^KServe\s+33\.8, 13\.0, 26\.0\s+267\s+-\s+0$/);
  });

  it('pins every package of the KServe environment, the peers at the versions the issue names', () => {
    const lines = readFileSync(join(workspaceRoot, 'bench', 'peers', 'requirements.txt'), 'utf8')
      .split('\n')
      .filter((line) => line.trim() && !line.startsWith('#'));
    expect(lines.filter((line) => !/^[A-Za-z0-9_.-]+==[^=\s]+$/.test(line))).toEqual([]);
    expect(lines).toEqual(expect.arrayContaining(['kserve==0.21.0', 'onnxruntime==1.30.0']));
  });

  it("gives KServe's onnxruntime the session options of the service's (libs/runtime)", () => {
    const ours = readFileSync(join(workspaceRoot, 'libs', 'runtime', 'src', 'onnx-session.ts'), 'utf8');
    const theirs = readFileSync(join(workspaceRoot, 'bench', 'peers', 'kserve_model.py'), 'utf8');
    const pairs: [string, string][] = [
      [
        "graphOptimizationLevel: options.graphOptimizationLevel ?? 'all'",
        'GraphOptimizationLevel.ORT_ENABLE_ALL',
      ],
      ['intraOpNumThreads: options.intraOpThreads ?? 0', 'intra_op_num_threads = 0'],
      ["executionMode: 'sequential'", 'ExecutionMode.ORT_SEQUENTIAL'],
      ['enableMemPattern: false', 'enable_mem_pattern = False'],
      [
        "intra_op: { allow_spinning: '0' }",
        'add_session_config_entry("session.intra_op.allow_spinning", "0")',
      ],
    ];
    for (const [service, peer] of pairs) {
      expect(ours).toContain(service);
      expect(theirs).toContain(peer);
    }
  });
});
