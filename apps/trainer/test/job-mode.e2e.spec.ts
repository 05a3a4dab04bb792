/**
 * Job mode end to end without a cluster. The trainer's Kubernetes runner (against a fake API server)
 * creates the Job of a real tiny fine-tune; this test plays the kubelet: it runs the Job's container
 * command (the real entry point, from sources) with the Job's environment, its volumes mapped to local
 * folders. The first pod is stopped with SIGTERM after its first checkpoint, as on an eviction; the
 * next pod resumes from that checkpoint and publishes. Every record reaches the trainer's store through
 * the event file on the work volume.
 */
import { loadConfig, trainerConfigSpec } from '@deit-serve/config';
import { FASHION_MNIST_FILES, FASHION_MNIST_LABELS } from '@deit-serve/datasets';
import {
  FINETUNE_JOB_COMMAND,
  fineTuneJobName,
  type BatchJobsApi,
  type Job,
  type JobView,
} from '@deit-serve/k8s-jobs';
import { DirectoryRegistry } from '@deit-serve/registry';
import { publishTinyDeit } from '@deit-serve/testing';
import {
  EVENTS_FILE,
  EventFileTail,
  JobStore,
  KubernetesJobRunner,
  POD_EXIT,
  jobFolder,
  readEventFile,
  validateFineTuneSpec,
  type FineTuneResult,
} from '@deit-serve/trainer-engine';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubernetesRunnerOptions } from '../src/job-mode';

const workspaceRoot = join(__dirname, '..', '..', '..');
const REGISTER_TS = join(workspaceRoot, 'tools', 'test-support', 'register-ts.cjs');
const RUN_JOB_SOURCE = join(__dirname, '..', 'src', 'run-job.ts');
/** Two pod start-ups compiling the sources, and a few dozen training steps, on two busy cores. */
const TEST_TIMEOUT_MS = 300_000;

class FakeBatchApi implements BatchJobsApi {
  readonly jobs = new Map<string, { body: Job; status: NonNullable<JobView['status']> }>();
  createNamespacedJob(request: { body: Job }): Promise<unknown> {
    const name = request.body.metadata.name;
    if (this.jobs.has(name)) return Promise.reject(Object.assign(new Error('exists'), { code: 409 }));
    this.jobs.set(name, { body: request.body, status: {} });
    return Promise.resolve(request.body);
  }
  listNamespacedJob(): Promise<{ items: JobView[] }> {
    return Promise.resolve({
      items: [...this.jobs.values()].map((j) => ({ metadata: j.body.metadata, status: j.status })),
    });
  }
  deleteNamespacedJob(request: { name: string }): Promise<unknown> {
    this.jobs.delete(request.name);
    return Promise.resolve({});
  }
}

/** Fashion-MNIST-shaped gzip IDX files: a bar whose height encodes the class, plus noise. */
function writeFashionMnist(dir: string, count: number): void {
  mkdirSync(dir, { recursive: true });
  const idx = (magic: number, dims: number[], data: Uint8Array): Buffer => {
    const header = Buffer.alloc(4 + 4 * dims.length);
    header.writeUInt32BE(magic, 0);
    dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
    return gzipSync(Buffer.concat([header, data]));
  };
  for (const [split, n] of [
    ['train', count],
    ['test', 0],
  ] as const) {
    const images = new Uint8Array(n * 784);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % 10;
      for (let p = 0; p < 784; p++) {
        const bar = Math.abs(Math.floor(p / 28) - (2 + (i % 10) * 2.4)) < 2 ? 200 : 0;
        images[i * 784 + p] = Math.min(255, bar + ((p * 31 + i * 17) % 40));
      }
    }
    writeFileSync(join(dir, FASHION_MNIST_FILES[split].images), idx(0x803, [n, 28, 28], images));
    writeFileSync(join(dir, FASHION_MNIST_FILES[split].labels), idx(0x801, [n], labels));
  }
}

describe('job mode: a fine-tune as a Kubernetes Job, stopped and resumed across pods', () => {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'deit-job-mode-')));
  const registryDir = join(root, 'registry');
  const workDir = join(root, 'work');
  const dataDir = join(root, 'data', 'fmnist');
  const pods: ChildProcess[] = [];
  let store: JobStore;
  let runner: KubernetesJobRunner;
  const api = new FakeBatchApi();

  beforeAll(async () => {
    const registry = await DirectoryRegistry.open(registryDir, { create: true });
    await publishTinyDeit(registry, 'student', {
      config: { imgSize: 28, patchSize: 7, numClasses: 10 },
      labels: [...FASHION_MNIST_LABELS],
    });
    writeFashionMnist(dataDir, 320);
    const config = loadConfig(trainerConfigSpec, {
      DEIT_TRAINER_RUNNER: 'kubernetes',
      DEIT_TRAINER_NAMESPACE: 'deit-serve',
      DEIT_TRAINER_WORK_DIR: workDir,
      DEIT_JOBS_DB: join(root, 'state', 'jobs.sqlite'),
    });
    store = JobStore.open(config.jobsDb);
    runner = new KubernetesJobRunner({
      ...kubernetesRunnerOptions(config, store, api, {
        // The trainer's environment, forwarded to the pods.
        env: { DEIT_TRAINING_BACKEND: 'wasm', DEIT_TRAINER_DATA_ROOTS: join(root, 'data') },
      }),
      resultGraceMs: 60_000,
    });
  });

  afterAll(async () => {
    for (const pod of pods) if (pod.exitCode === null && pod.signalCode === null) pod.kill('SIGKILL');
    await runner.stop();
    store.close();
    rmSync(root, { recursive: true, force: true });
  });

  /** What the kubelet would do with the Job's pod template, with its volumes as local folders. */
  function startPod(job: Job, podName: string): { pod: ChildProcess; exit: Promise<number | null> } {
    const spec = job.spec.template.spec;
    const container = spec.containers[0];
    expect(container.command).toEqual([...FINETUNE_JOB_COMMAND]);
    const claims: Record<string, string> = { 'deit-registry': registryDir, 'deit-finetune-work': workDir };
    const mounts = new Map<string, string>();
    for (const mount of container.volumeMounts) {
      const volume = spec.volumes.find((v) => v.name === mount.name)!;
      const local: string | undefined = volume.persistentVolumeClaim
        ? claims[volume.persistentVolumeClaim.claimName]
        : mkdtempSync(join(root, `${mount.name}-`));
      if (local === undefined) throw new Error(`no local folder for the volume ${mount.name}`);
      mounts.set(mount.mountPath, local);
    }
    const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOSTNAME: podName };
    for (const { name, value } of container.env) env[name] = mounts.get(value) ?? value;
    // The image runs dist/apps/trainer/src/run-job.js; from sources here (job-mode.spec.ts checks the mapping).
    const pod = spawn(process.execPath, ['--enable-source-maps', '-r', REGISTER_TS, RUN_JOB_SOURCE], {
      cwd: workspaceRoot,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    pods.push(pod);
    let stderr = '';
    pod.stderr?.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const exit = new Promise<number | null>((resolve) =>
      pod.on('close', (code) => {
        if (code !== 0 && code !== POD_EXIT.stopped)
          console.error(`${podName} exited with ${code}: ${stderr}`);
        resolve(code);
      }),
    );
    return { pod, exit };
  }

  async function until(what: string, condition: () => boolean, intervalMs = 100): Promise<void> {
    const deadline = Date.now() + TEST_TIMEOUT_MS;
    for (;;) {
      await runner.poll();
      if (condition()) return;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  it(
    'runs, checkpoints, is stopped, resumes in a new pod, publishes, and the trainer records it all',
    async () => {
      const spec = validateFineTuneSpec({
        outputModel: 'fmnist-student',
        student: { registryRef: 'student:1' },
        teacher: undefined,
        dataset: {
          fashionMnist: { dir: dataDir, evalOnTest: false },
          validationFraction: 0.25,
          maxTrainImages: 0,
          maxEvalImages: 32,
        },
        distillation: undefined,
        // 240 training images in batches of 8: 30 steps an epoch.
        optimization: { epochs: 2, batchSize: 8, lr: 1e-3, lrFixed: true, warmupEpochs: 0 },
        augmentation: undefined,
        seed: 3,
        trainable: undefined,
        evalIntervalEpochs: 0,
        promotion: undefined,
      });
      const id = store.create({ kind: 'fine-tune', spec }).job.id;
      await runner.poll();
      const created = api.jobs.get(fineTuneJobName(id));
      expect(created, 'the Job').toBeDefined();
      const job = created!.body;

      // Pod 1: stopped (SIGTERM, as on a node drain or an eviction) once it is training: the job
      // function checkpoints where it is and stops. (Two epochs of 30 steps leave seconds of margin.)
      created!.status = { active: 1 };
      const first = startPod(job, 'pod-1');
      const events = join(jobFolder(workDir, id), EVENTS_FILE);
      const tail = new EventFileTail(events);
      for (;;) {
        if (tail.read().records.some((r) => r.type === 'progress' && r.progress.step >= 2)) break;
        const ended = await Promise.race([
          first.exit,
          new Promise((r) => setTimeout(() => r('running'), 10)),
        ]);
        if (ended !== 'running') throw new Error(`pod-1 ended (${String(ended)}) before it trained`);
      }
      first.pod.kill('SIGTERM');
      expect(await first.exit, 'pod-1 must stop mid-run, not finish').toBe(POD_EXIT.stopped);
      created!.status = { active: 0, failed: 1 };
      await runner.poll();
      expect(store.get(id).state).toBe('RUNNING');
      // The checkpoint pod-1 wrote when told to stop: the next pod must start there.
      const resumedAt = store.latestCheckpoint(id);
      const written = readEventFile(events);
      expect(written.slice(-3)).toEqual([
        { type: 'checkpoint', path: resumedAt?.path, epoch: resumedAt?.epoch },
        { type: 'log', message: expect.stringMatching(/^stopped .*checkpoint written/) },
        { type: 'stopped', reason: 'shutdown' },
      ]);

      // Pod 2: Kubernetes starts another; it resumes from the last checkpoint and finishes.
      created!.status = { active: 1, failed: 1 };
      const second = startPod(job, 'pod-2');
      await until('SUCCEEDED', () => store.get(id).state !== 'RUNNING');
      expect(await second.exit).toBe(POD_EXIT.ok);

      const record = store.get<unknown, FineTuneResult>(id);
      expect(record.state, record.error).toBe('SUCCEEDED');
      expect(record.result).toMatchObject({ model: 'fmnist-student', version: 1 });
      expect(record.backend).toBe('tfjs-wasm');
      expect(record.progress).toMatchObject({ epoch: 2, epochs: 2, stepsPerEpoch: 30 });
      const registry = await DirectoryRegistry.open(registryDir);
      expect(await registry.listVersions('fmnist-student')).toEqual([1]);

      const messages = store.events(id).flatMap((e) => (e.body.type === 'message' ? [e.body.message] : []));
      expect(store.checkpoints(id).at(-1)?.epoch).toBe(2);
      expect(messages).toEqual(
        expect.arrayContaining([
          `Kubernetes Job deit-serve/${fineTuneJobName(id)} created`,
          'pod pod-1 started attempt 1',
          'pod stopped (shutdown) after a checkpoint',
          'pod failed (1 so far); Kubernetes starts another, which resumes from the last checkpoint',
          `pod pod-2 started attempt 2, resuming from the epoch ${resumedAt!.epoch} checkpoint`,
        ]),
      );
      expect(messages.some((m) => m.startsWith(`resumed from ${resumedAt!.path}`))).toBe(true);
      expect(messages.some((m) => m.startsWith('published fmnist-student:1'))).toBe(true);
    },
    TEST_TIMEOUT_MS,
  );
});
