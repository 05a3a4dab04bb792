/**
 * Training speed of the fine-tune job on Fashion-MNIST: the default student
 * (deit_pico_distilled_patch4_28) distilled (hard) from a regnety_fmnist_28 teacher in onnxruntime,
 * one epoch on `--images` training images, in one thread and data-parallel. Reports the job's own
 * images/s (training steps only: batch assembly, teacher, forward/backward, AdamW) and the teacher's
 * share, measured alone.
 *
 *   node -r ./libs/finetune/test/bench/run.cjs libs/finetune/test/bench/train-speed.ts \
 *     [--images 1024] [--batch 64] [--epochs 1] [--workers 2] [--only local,dp,auto] [--distillation hard|none]
 *     [--curves out.png]   (copies the last run's published curves.png there)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { FASHION_MNIST_LABELS } from '@deit-serve/datasets';
import { packageAndPublish, presetWeights } from '@deit-serve/packaging';
import { trainerV1 } from '@deit-serve/proto';
import { DirectoryRegistry } from '@deit-serve/registry';
import { validateFineTuneSpec, type JobProgress } from '@deit-serve/trainer-engine';
import { createFineTuneJob } from '../../src';
import { loadFineTuneSources } from '../../src/sources';
import { TeacherRunner } from '../../src/teacher';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}

async function main(): Promise<void> {
  const images = Number(arg('images', '1024'));
  const batch = Number(arg('batch', '64'));
  const workers = Number(arg('workers', '2'));
  const only = arg('only', 'local,dp').split(',');
  const distillation = arg('distillation', 'hard');
  const epochs = Number(arg('epochs', '1'));
  const curves = arg('curves', '');
  const root = await mkdtemp(join(tmpdir(), 'finetune-bench-'));
  try {
    const registry = await DirectoryRegistry.open(join(root, 'registry'));
    const teacher = presetWeights({ preset: 'regnety_fmnist_28', seed: 1 });
    await packageAndPublish(registry, 'fmnist-regnet', {
      ...teacher,
      preset: 'regnety_fmnist_28',
      labels: FASHION_MNIST_LABELS,
    });
    const D = trainerV1.DistillationType;
    const spec = validateFineTuneSpec({
      outputModel: 'bench-student',
      student: { preset: 'deit_pico_distilled_patch4_28' },
      teacher: { registryRef: 'fmnist-regnet' },
      dataset: {
        fashionMnist: { dir: '', evalOnTest: true },
        validationFraction: 0,
        maxTrainImages: images,
        maxEvalImages: 256,
      },
      distillation: {
        type: distillation === 'none' ? D.DISTILLATION_TYPE_NONE : D.DISTILLATION_TYPE_HARD,
        softNormalization: 0,
      },
      optimization: { epochs, batchSize: batch, lrFixed: false, warmupEpochs: 0 },
      augmentation: undefined,
      seed: 0,
      trainable: undefined,
      evalIntervalEpochs: 0,
      promotion: undefined,
    });

    // The teacher alone on one batch, as the job runs it (after a warm-up run).
    const sources = await loadFineTuneSources(spec, { registry });
    const runner = new TeacherRunner(
      sources.teacher as NonNullable<typeof sources.teacher>,
      sources.student.input,
    );
    const pixels = new Float32Array(batch * 3 * 28 * 28).map((_, i) => Math.sin(i));
    await runner.logits(pixels, [batch, 3, 28, 28]);
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) await runner.logits(pixels, [batch, 3, 28, 28]);
    const teacherMs = (performance.now() - t0) / 5;
    await runner.release();
    console.log(`teacher regnety_fmnist_28 (onnxruntime): ${teacherMs.toFixed(1)} ms per batch of ${batch}`);

    for (const [index, mode] of only.entries()) {
      const progress: JobProgress[] = [];
      const started = performance.now();
      const job = createFineTuneJob({
        registry,
        parallelism: mode === 'dp' ? { workers } : mode === 'auto' ? 'auto' : 'local',
        progressIntervalMs: 0,
      });
      const logs: string[] = [];
      const result = await job({
        jobId: `bench-${mode}`,
        spec,
        workDir: join(root, 'jobs', `${index}-${mode}`),
        attempt: 1,
        signal: new AbortController().signal,
        report: {
          progress: (p) => void progress.push(p),
          eval: () => undefined,
          checkpoint: () => Promise.resolve(),
          log: (m) => void logs.push(m),
          backend: () => undefined,
        },
      });
      const last = progress[progress.length - 1];
      if (curves !== '') {
        const loaded = await registry.loadVersion(`bench-student:${result.version}`, {
          files: ['curves.png'],
        });
        await writeFile(curves, loaded.files.get('curves.png') ?? new Uint8Array());
      }
      console.log(logs.filter((l) => /^(training|trained|epoch|measured)/.test(l)).join('\n'));
      console.log(
        `${mode}: ${last?.imagesPerSecond?.toFixed(1)} images/s over ${progress.length} steps of ${batch} ` +
          `(${distillation}); whole job ${((performance.now() - started) / 1000).toFixed(1)} s; load ${loadavg()
            .map((l) => l.toFixed(2))
            .join(' ')}`,
      );
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
