/**
 * The zoo's results: every finished stage's published file evaluated on the 10k Fashion-MNIST test
 * images through onnxruntime (the runtime and preprocessing the inference service uses), rendered as
 * a table in the shape of the DeiT paper's Table 3.
 */
import type { ImageDataset } from '@deit-serve/datasets';
import type { ModelRegistry } from '@deit-serve/registry';
import { evaluateOnnx, type OnnxEvaluation } from './onnx-evaluation';
import {
  stageKind,
  stageSeed,
  ZOO_GENERATION,
  ZOO_STAGES,
  ZOO_STUDENT_SEEDS,
  type StudentStage,
  type ZooStage,
} from './recipes';
import { ZOO_STAGE_LIMIT_SECONDS } from './stage-clock';
import { readStageRecord, type StageRecord } from './stage-record';

export interface ZooRow {
  readonly record: StageRecord;
  readonly evaluation: OnnxEvaluation;
}

export interface ZooResults {
  readonly rows: Partial<Record<ZooStage, ZooRow>>;
  readonly missing: readonly ZooStage[];
  readonly evaluatedAt: string;
  readonly machine: string;
  readonly gitCommit: string | null;
}

export async function evaluateZoo(options: {
  registry: ModelRegistry;
  recordsDir: string;
  test: ImageDataset;
  machine: string;
  gitCommit: string | null;
  log?: (message: string) => void;
}): Promise<ZooResults> {
  const rows: Partial<Record<ZooStage, ZooRow>> = {};
  const missing: ZooStage[] = [];
  for (const stage of ZOO_STAGES) {
    const record = await readStageRecord(options.recordsDir, stage);
    if (record === undefined) {
      missing.push(stage);
      continue;
    }
    const evaluation = await evaluateOnnx(
      options.registry,
      `${record.model}:${record.version}`,
      options.test,
    );
    if (evaluation.images !== options.test.size) {
      throw new Error(`${stage}: evaluated ${evaluation.images} of ${options.test.size} test images`);
    }
    options.log?.(
      `${stage}: ${record.model}:${record.version} top-1 ` +
        Object.entries(evaluation.top1)
          .map(([head, v]) => `${head} ${pct(v)}`)
          .join(', ') +
        `, ${evaluation.imagesPerSecond.toFixed(0)} img/s`,
    );
    rows[stage] = { record, evaluation };
  }
  return {
    rows,
    missing,
    evaluatedAt: new Date().toISOString(),
    machine: options.machine,
    gitCommit: options.gitCommit,
  };
}

function pct(fraction: number | undefined): string {
  return fraction === undefined ? '—' : `${(fraction * 100).toFixed(2)}%`;
}

function minutes(seconds: number): string {
  return seconds < 0 ? '—' : `${(seconds / 60).toFixed(1)} min`;
}

/** The whole stage's wall time, or (older records) the last sitting's, marked as a lower bound. */
function stageTime(record: StageRecord): string {
  return record.stageWallSeconds !== undefined
    ? minutes(record.stageWallSeconds)
    : `≥ ${minutes(record.wallSeconds)} (last sitting only; not recorded)`;
}

/** Mean and sample standard deviation (n − 1) of the values; sd is undefined for fewer than two. */
export interface Spread {
  readonly n: number;
  readonly mean: number;
  readonly sd: number | undefined;
}

export function spread(values: readonly number[]): Spread | undefined {
  const n = values.length;
  if (n === 0) return undefined;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n < 2 ? undefined : Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  return { n, mean, sd };
}

/** `91.62% ± 0.14 (3 seeds)`: mean and standard deviation in percentage points. */
export function pctSpread(s: Spread | undefined): string {
  if (s === undefined) return '—';
  const runs = s.n === 1 ? '1 seed' : `${s.n} seeds`;
  return s.sd === undefined
    ? `${pct(s.mean)} (${runs})`
    : `${pct(s.mean)} ± ${(s.sd * 100).toFixed(2)} (${runs})`;
}

type Head = 'cls' | 'dist' | 'avg';

/** The finished runs of one student kind, seed order. */
export function kindRows(results: ZooResults, kind: StudentStage): ZooRow[] {
  return ZOO_STAGES.filter((stage) => stageKind(stage) === kind).flatMap((stage) => {
    const row = results.rows[stage];
    return row === undefined ? [] : [row];
  });
}

/** One head's top-1 over the finished runs of a kind. */
export function headSpread(results: ZooResults, kind: StudentStage, head: Head): Spread | undefined {
  const values = kindRows(results, kind).flatMap((row) => {
    const v = row.evaluation.top1[head];
    return v === undefined ? [] : [v];
  });
  return spread(values);
}

/**
 * a − b in points, with whether it stands out of seed noise: |a − b| ≥ 2 standard errors of the
 * difference (Welch). With fewer than two runs on a side there is no spread, so no verdict.
 */
export function compareSpreads(a: Spread, b: Spread): { points: number; verdict: string } {
  const points = (a.mean - b.mean) * 100;
  if (a.sd === undefined || b.sd === undefined) {
    return { points, verdict: 'no seed spread on both sides, so noise cannot be judged' };
  }
  const se = Math.sqrt(a.sd ** 2 / a.n + b.sd ** 2 / b.n) * 100;
  const outside = Math.abs(points) >= 2 * se;
  return {
    points,
    verdict: outside
      ? `outside the seed noise (2 standard errors of the difference: ${(2 * se).toFixed(2)} points)`
      : `WITHIN the seed noise (2 standard errors of the difference: ${(2 * se).toFixed(2)} points): not a difference these runs can show`,
  };
}

const signed = (points: number): string => `${points >= 0 ? '+' : ''}${points.toFixed(2)}`;

/** The targets of the current generation (issue 20). */
export const ZOO_TARGETS = { teacherTop1: 0.94, hardMeanAvgTop1: 0.915 } as const;

/** The checks the issue asks for, stated from the numbers (never assumed). */
export function zooFindings(results: ZooResults): string[] {
  const { teacher } = results.rows;
  const out: string[] = [];
  const t = teacher?.evaluation.top1.cls;
  if (t !== undefined) {
    out.push(
      `Teacher top-1 ${pct(t)}: ${t >= ZOO_TARGETS.teacherTop1 ? 'meets' : 'MISSES'} the ${pct(ZOO_TARGETS.teacherTop1)} target.`,
    );
  }
  const hardAvg = headSpread(results, 'hard', 'avg');
  if (hardAvg !== undefined) {
    const complete = hardAvg.n === ZOO_STUDENT_SEEDS.hard.length;
    out.push(
      `Hard-distilled student, average head, mean over seeds: ${pctSpread(hardAvg)}: ` +
        `${hardAvg.mean >= ZOO_TARGETS.hardMeanAvgTop1 ? 'meets' : 'MISSES'} the ${pct(ZOO_TARGETS.hardMeanAvgTop1)} target` +
        `${complete ? '' : ` (${hardAvg.n} of ${ZOO_STUDENT_SEEDS.hard.length} seeds so far)`}.`,
    );
    if (t !== undefined) {
      const gap = (hardAvg.mean - t) * 100;
      out.push(
        `Student vs teacher (the paper's headline: the distilled student at or above its teacher): ` +
          `${pct(hardAvg.mean)} vs ${pct(t)}, ${signed(gap)} points — ` +
          (gap >= 0 ? 'the student catches its teacher.' : 'the student stays BELOW its teacher.'),
      );
    }
    const cls = headSpread(results, 'hard', 'cls');
    const dist = headSpread(results, 'hard', 'dist');
    if (cls !== undefined && dist !== undefined) {
      const gap = (hardAvg.mean - Math.max(cls.mean, dist.mean)) * 100;
      out.push(
        `Average head vs the better single head (means): ${signed(gap)} points ` +
          `(${gap >= -0.2 ? 'within 0.2 points or above, as the paper finds' : "MORE than 0.2 points below — the paper's claim does not hold here"}).`,
      );
    }
  }
  const budgets = new Set(
    (['none', 'soft', 'hard'] as const).flatMap((kind) =>
      kindRows(results, kind).map((r) => r.record.budget),
    ),
  );
  const comparable = budgets.size <= 1 && !budgets.has(undefined);
  if (!comparable) {
    out.push(
      'Students NOT COMPARABLE: their records name different budgets (or none); `npm run zoo` retrains the stale ones.',
    );
  }
  const pairs: [string, StudentStage, Head, StudentStage, Head, string][] = [
    [
      'Hard distillation vs none',
      'hard',
      'avg',
      'none',
      'cls',
      'average head against the class head, the only trained head of `none`',
    ],
    [
      'Soft vs none',
      'soft',
      'cls',
      'none',
      'cls',
      "class heads; the paper's Table 3 has soft level with none",
    ],
    ['Hard vs soft distillation', 'hard', 'avg', 'soft', 'avg', 'average heads; the paper finds hard ahead'],
  ];
  for (const [label, ka, ha, kb, hb, note] of pairs) {
    const a = headSpread(results, ka, ha);
    const b = headSpread(results, kb, hb);
    if (a === undefined || b === undefined || !comparable) continue;
    const { points, verdict } = compareSpreads(a, b);
    out.push(`${label} (${note}): ${pctSpread(a)} vs ${pctSpread(b)}, ${signed(points)} points, ${verdict}.`);
  }
  const timed = ZOO_STAGES.flatMap((stage) => {
    const row = results.rows[stage];
    return row === undefined ? [] : [[stage, row.record.stageWallSeconds] as const];
  });
  if (timed.length > 0) {
    const over = timed.filter(([, s]) => s !== undefined && s > ZOO_STAGE_LIMIT_SECONDS);
    const unknown = timed.filter(([, s]) => s === undefined);
    const verdict =
      over.length > 0
        ? `MISSES the 60-minute limit (${over.map(([stage]) => stage).join(', ')})`
        : unknown.length > 0
          ? `within the 60-minute limit where recorded; not recorded for ${unknown.map(([stage]) => stage).join(', ')}`
          : 'each within the 60-minute limit';
    out.push(
      `Stage wall time over all sittings: ${timed.map(([stage, s]) => `${stage} ${s === undefined ? 'not recorded' : minutes(s)}`).join(', ')}: ${verdict}.`,
    );
  }
  return out;
}

/** Where the previous generation's records and results.json live, under the records directory. */
export const PREVIOUS_GENERATION_DIR = 'generation-1';

/** Generation 2's recipe choices, facts from the pilots' logs. */
const GENERATION_2_CHOICES: readonly string[] = [
  '- Teacher, native step times at batch 128 (`regnety_fmnist_28` with the `architecture` shown;',
  '  2026-12-08): widths 48/96/192, depths 1/2/3, groups of 16 (0.44 M parameters) 597 ms; widths',
  '  64/128/256 (0.73 M) 642 ms; 64/128/256 at depths 2/3/4 (1.0 M) 1,058 ms; 96/192/384 in groups of',
  '  32 (1.7 M) 1,016 ms. Wider is nearly free, deeper is not.',
  "- Teacher pilot `wide-10`: widths 64/128/256, 10 epochs, the rest of generation 1's recipe: hold-out",
  '  top-1 93.27% (log: `zoo/pilots/teacher-wide-10.log`), under the 94.0% target (the pilot shared the',
  '  machine with benchmarks, so its own time says nothing); 10 epochs on 60k images at 642 ms per step',
  '  are ≈ 50 min of steps. Not adopted; the next pilots: stronger augmentation and',
  '  learning rate at this width.',
  "- Students: no generation-2 pilot yet; the recipe is still generation 1's.",
];

/**
 * How the recipes were reached: fixed facts about past runs, so RESULTS.md states them whenever it is
 * regenerated.
 */
const RECIPE_CHOICES: readonly string[] = [
  '## How the recipes were chosen',
  '',
  '### Generation 2',
  '',
  'Pilots train on 54,000 training images and are judged on the other 6,000 (a stratified hold-out of',
  'the training set, seed 0): students with `node bench/zoo-pilot/pilot.mjs NAME EPOCHS OVERRIDES`, the',
  'teacher with `node bench/zoo-pilot/teacher-pilot.mjs NAME EPOCHS OVERRIDES`. Every stage trains on',
  'native TensorFlow (tfjs-node), 1.7–2.2× faster than wasm here on these networks',
  '(`npm run bench:train-step`).',
  '',
  ...GENERATION_2_CHOICES,
  '',
  '### Generation 1',
  '',
  'Pilots train on 54,000 training images and are judged on the other 6,000 (a stratified hold-out of',
  'the training set, seed 0) with `node bench/zoo-pilot/pilot.mjs NAME EPOCHS OVERRIDES`; top-1 of the',
  'average head unless said otherwise.',
  '',
  "- Teacher: the test set was used once, here: the teacher's first run (6 epochs) reached 91.78%,",
  '  under the 92.0% target, and as its training loss was still falling its budget was raised to 8',
  '  epochs (record and log in `zoo/generation-1/attempts/`). No other choice used the test set.',
  '- Student: one-epoch pilots with labels only: `deit_pico_distilled_patch7_28` (18 tokens) 82.4%,',
  '  `deit_pico_distilled_patch4_28` (51 tokens) 78.3% at three times the cost per image, so patch 7',
  '  buys ~3× the epochs in the hour.',
  '- First recipe, 12 epochs at lr 1e-3: hard student 87.11%, training loss still falling.',
  '- Second recipe: 3-epoch hard-distillation pilots: lr 1e-3 81.45%, 2e-3 82.12%, 3e-3 81.95%, 2e-3',
  '  without label smoothing and stochastic depth 81.92%. 14 epochs at lr 2e-3, batch 128: hard 88.54%.',
  '  Wider students cost more than they could repay in an hour (training throughput, 2 wasm workers:',
  '  D 96 299 img/s, D 144 182, D 192 116, D 192 at depth 4 163), so the network stayed.',
  '- Third recipe, twice the optimizer steps per epoch: batch 64 costs ~10% more per image than 128 on',
  '  two workers, batch 32 ~25% (`bench/train-step/run.sh --preset deit_pico_distilled_patch7_28 --only',
  '  tfjs-dp --batch 64 --micro 32`). 3-epoch pilots: batch 64 at lr 2e-3 82.62%, at lr 1.4e-3 (the',
  '  square-root scaling of 2e-3 at 128) 83.02%, against 82.12% for batch 128 at 2e-3. 16 epochs at',
  '  ≈ 300 img/s: ≈ 53 min of training. Test set: hard 88.66%, none 88.28%, soft 88.92%.',
  '- Fourth recipe (current): no random crop, horizontal flip kept. With the third recipe the hard',
  "  student's training loss stayed far above its floor, and for a 4×4 grid of 7-px patches a ±2-px",
  "  shift moves content across patch borders while Fashion-MNIST's images are centred. 6-epoch hard",
  '  pilots, one thread each side by side (`--local`), epoch 3 / 6: third recipe 82.15% / 85.97%; without',
  '  the crop 85.32% / 88.67%; without the crop, label smoothing and stochastic depth 85.68% / 88.82%.',
  '  The last two are within noise; label smoothing and stochastic depth stay, the regularisers left',
  '  once the augmentation is gone.',
];

/** A Table 3 row of one run (generation 1's single-seed table). */
function runLine(label: string, row: ZooRow | undefined, teacherTop1: number | undefined): string {
  if (row === undefined) return `| ${label} | not run yet | | | | | | |`;
  const e = row.evaluation;
  return (
    `| ${label} | ${pct(e.top1.cls)} | ${pct(e.top1.dist)} | ${pct(e.top1.avg)} | ${pct(teacherTop1)} | ` +
    `${e.parameters.toLocaleString('en-US')} | ${minutes(row.record.trainSeconds)} | ${e.imagesPerSecond.toFixed(0)} |`
  );
}

/** A Table 3 row of a kind: each head's mean ± sd over its seeds. */
function kindLine(results: ZooResults, kind: StudentStage, teacherTop1: number | undefined): string {
  const rows = kindRows(results, kind);
  if (rows.length === 0) return `| ${kind} | not run yet | | | | | | |`;
  const mean = (f: (r: ZooRow) => number): number => rows.reduce((a, r) => a + f(r), 0) / rows.length;
  return (
    `| ${kind} | ${pctSpread(headSpread(results, kind, 'cls'))} | ${pctSpread(headSpread(results, kind, 'dist'))} | ` +
    `${pctSpread(headSpread(results, kind, 'avg'))} | ${pct(teacherTop1)} | ` +
    `${(rows[0]?.evaluation.parameters ?? 0).toLocaleString('en-US')} | ${minutes(mean((r) => r.record.trainSeconds))} | ` +
    `${mean((r) => r.evaluation.imagesPerSecond).toFixed(0)} |`
  );
}

const TABLE_3_HEADER = [
  '| distillation | CLS head | DIST head | average | teacher | parameters | training time | inference img/s |',
  '|---|---|---|---|---|---|---|---|',
];

function teacherLine(teacher: ZooRow | undefined): string {
  return teacher === undefined
    ? 'Teacher: not trained yet.'
    : `Teacher \`${teacher.record.model}:${teacher.record.version}\` (RegNetY): ` +
        `${pct(teacher.evaluation.top1.cls)} top-1, ${teacher.evaluation.parameters.toLocaleString('en-US')} parameters, ` +
        `${minutes(teacher.record.trainSeconds)} of training, ${teacher.evaluation.imagesPerSecond.toFixed(0)} img/s.`;
}

/**
 * RESULTS.md: the Table 3-shaped table with seed spread, every run, the previous generation's table
 * (`previous`, from `zoo/generation-1/results.json`), how it was made, how the recipes were chosen,
 * and the curves.
 */
export function renderResultsMarkdown(results: ZooResults, command: string, previous?: ZooResults): string {
  const { rows } = results;
  const teacherTop1 = rows.teacher?.evaluation.top1.cls;
  const runs = ZOO_STAGES.flatMap((stage) => {
    const row = rows[stage];
    if (row === undefined) return [`| ${stage} | ${stageSeed(stage)} | not run yet | | | | | | |`];
    const e = row.evaluation;
    return [
      `| ${stage} | ${row.record.seed ?? stageSeed(stage)} | \`${row.record.model}:${row.record.version}\` | ` +
        `${pct(e.top1.cls)} | ${pct(e.top1.dist)} | ${pct(e.top1.avg)} | ${minutes(row.record.trainSeconds)} | ` +
        `${stageTime(row.record)} | ${row.record.backend ?? 'not recorded'} |`,
    ];
  });
  const versions = ZOO_STAGES.flatMap((stage) => {
    const row = rows[stage];
    return row === undefined
      ? []
      : [
          `| ${stage} | \`${row.record.model}:${row.record.version}\` | \`${row.record.sha256.slice(0, 16)}…\` | ` +
            `${(row.evaluation.onnxBytes / 1e6).toFixed(2)} MB | ${row.record.gitCommit?.slice(0, 10) ?? '—'} |`,
        ];
  });
  const curves = ZOO_STAGES.flatMap((stage) => {
    const row = rows[stage];
    return row === undefined
      ? []
      : [
          `### ${stage}: \`${row.record.model}:${row.record.version}\``,
          '',
          `![${stage} training curves](registry/${row.record.model}/${row.record.version}/curves.png)`,
          '',
        ];
  });
  const previousRows = previous?.rows;
  const previousTable =
    previousRows === undefined
      ? ['Not available (`zoo/generation-1/results.json` is missing).']
      : [
          `Single runs, seed 0, trained on wasm; evaluated ${previous?.evaluatedAt ?? '—'} the same way.`,
          '',
          ...TABLE_3_HEADER,
          ...(['none', 'soft', 'hard'] as const).map((kind) =>
            runLine(kind, previousRows[kind], previousRows.teacher?.evaluation.top1.cls),
          ),
          '',
          teacherLine(previousRows.teacher),
          '',
          'Its versions stay in the registry as rollback targets (`deit models rollback fmnist-deit --alias',
          'production`); its records are in `zoo/generation-1/`.',
        ];
  return [
    "# Results: default models trained here, and DeiT's distillation ablation on Fashion-MNIST",
    '',
    `Generated by \`${command}\` from the published files (do not edit by hand).`,
    '',
    'Every number below is top-1 on the **10,000 Fashion-MNIST test images**, computed through',
    "onnxruntime on the exact `model.onnx` files in `registry/`, with each manifest's preprocessing —",
    'what the inference service serves. The test set is used for reporting only: recipes, budgets and',
    'architectures were chosen on a hold-out of the training set (see',
    '[How the recipes were chosen](#how-the-recipes-were-chosen)); generation 1 states its one exception',
    'there.',
    '',
    `## Table 3 (shape of the DeiT paper's), Fashion-MNIST, generation ${ZOO_GENERATION}`,
    '',
    ...TABLE_3_HEADER,
    kindLine(results, 'none', teacherTop1),
    kindLine(results, 'soft', teacherTop1),
    kindLine(results, 'hard', teacherTop1),
    '',
    teacherLine(rows.teacher),
    '',
    'Columns: top-1 of the class-token head, the distillation-token head, and their average (mean of',
    "logits, as DeiT evaluates), each as the mean ± standard deviation in points over the kind's seeds;",
    "the teacher's top-1; trainable parameters; seconds spent in training steps (mean over seeds, all",
    'sittings; evaluation and export excluded); onnxruntime throughput at batch 64 on this machine (CPU,',
    'preprocessing excluded). The `none` student still has a distillation head: it gets no gradient (the',
    'official `none` loss), so its DIST column shows an untrained head.',
    '',
    '## Every run',
    '',
    '| run | seed | version | CLS head | DIST head | average | training time | stage wall time, all sittings | trained on |',
    '|---|---|---|---|---|---|---|---|---|',
    ...runs,
    '',
    '## Findings',
    '',
    ...zooFindings(results).map((f) => `- ${f}`),
    ...(results.missing.length > 0 ? [`- Not finished yet: ${results.missing.join(', ')}.`] : []),
    '',
    '## Generation 1, for comparison',
    '',
    ...previousTable,
    '',
    '## How these numbers were made',
    '',
    `- Command: \`npm run zoo\` (resumable; each run is skipped once its record in \`zoo/\` names a`,
    '  registry version with the same sha256 and recipe). Re-evaluate only: `npm run zoo -- evaluate`.',
    `- Seeds: the teacher and the first run of each student 0; \`none\` and \`hard\` also 1 and 2. The`,
    '  production model is `hard` (seed 0), fixed before any run. Recipes: `libs/zoo/src/recipes.ts`',
    '  (`ZOO_TEACHER_SPEC`, `zooStudentSpec`, `ZOO_STUDENT_SEEDS`).',
    `- Machine: ${results.machine}.`,
    `- Evaluated at ${results.evaluatedAt}, commit ${results.gitCommit ?? 'unknown'}.`,
    '',
    ...(versions.length > 0
      ? [
          '| run | version | model.onnx sha256 | size | trained at commit |',
          '|---|---|---|---|---|',
          ...versions,
        ]
      : ['No run of this generation has been published yet.']),
    '',
    ...RECIPE_CHOICES,
    '',
    '## Training curves',
    '',
    ...(curves.length > 0 ? curves : ['None yet in this generation.', '']),
  ].join('\n');
}

/** Where RESULTS.md's hand-written part begins: everything from this line on survives regeneration. */
export const HAND_WRITTEN_MARKER =
  '<!-- Hand-written from here on: npm run zoo does not generate it; keep it when regenerating. -->';

/** The new page, then (after a blank line) the hand-written part of the page it replaces, if that has one. */
export function keepHandWritten(page: string, previous: string | undefined): string {
  const at = previous?.indexOf(HAND_WRITTEN_MARKER) ?? -1;
  return at < 0 || previous === undefined ? page : `${page.trimEnd()}\n\n${previous.slice(at)}`;
}
