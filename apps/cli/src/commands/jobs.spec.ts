import { freePort } from '@deit-serve/grpc-server';
import { PROTO_PACKAGES, trainerV1, trainerV1Client } from '@deit-serve/proto';
import { startTestService, type TestService } from '@deit-serve/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../cli';
import { fakeTrainerModule, io, job, progress, trainer } from './fake-trainer.testing';
import { runJobsCommand } from './jobs';

const { JobState } = trainerV1;

function seed() {
  trainer.jobs.set(
    'job-a',
    job({
      id: 'job-a',
      state: JobState.JOB_STATE_RUNNING,
      spec: trainerV1Client.FineTuneSpec.fromPartial({
        outputModel: 'pico',
        student: { preset: 'deit_pico' },
        teacher: { registryRef: 'teacher@prod' },
        dataset: { fashionMnist: { dir: '', evalOnTest: false }, maxTrainImages: 100 },
        optimization: { epochs: 4, batchSize: 32 },
      }),
      progress: progress({ epoch: 2, epochs: 4, step: 5, stepsPerEpoch: 10 }),
      backend: 'wasm',
    }),
  );
  trainer.jobs.set(
    'job-b',
    job({
      id: 'job-b',
      state: JobState.JOB_STATE_SUCCEEDED,
      spec: trainerV1Client.FineTuneSpec.fromPartial({ outputModel: 'tiny', promotion: { alias: 'prod' } }),
      result: {
        model: 'tiny',
        version: 3,
        sha256: 'cd'.repeat(32),
        finalEval: undefined,
        promoted: false,
        promotionReason: 'top-1 0.80 does not beat 0.81',
      },
    }),
  );
  trainer.jobs.set(
    'job-c',
    job({ id: 'job-c', state: JobState.JOB_STATE_FAILED, error: 'teacher labels differ from the dataset' }),
  );
}

describe('deit jobs', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService(fakeTrainerModule, {
      protoFiles: ['trainer'],
      packages: [PROTO_PACKAGES.trainer],
    });
  });
  afterAll(() => service?.close());
  beforeEach(() => {
    trainer.reset();
    seed();
  });

  it('lists jobs as a table', async () => {
    const t = io({ DEIT_TRAINER_ADDR: service.address });
    expect(await runJobsCommand(['list'], t.io)).toBe(0);
    expect(trainer.listed[0]).toMatchObject({ states: [], pageSize: 0 });
    const lines = t.out().trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+STATE\s+MODEL\s+EPOCH\s+PROGRESS\s+CREATED$/);
    expect(lines[1]).toMatch(/^job-a\s+running\s+pico\s+2\/4\s+37%\s+2025-01-02T03:04:05Z$/);
    expect(lines[2]).toMatch(/^job-b\s+succeeded\s+tiny:3\s+-\s+100%\s+2025-01-02T03:04:05Z$/);
    expect(lines[3]).toMatch(/^job-c\s+failed\s+-\s+-\s+-\s+2025-01-02T03:04:05Z$/);
  });

  it('passes --state and --limit to the trainer', async () => {
    const t = io();
    expect(
      await runJobsCommand(
        [
          'list',
          '--state',
          'running',
          '--state',
          'JOB_STATE_FAILED',
          '--limit',
          '5',
          '--addr',
          service.address,
        ],
        t.io,
      ),
    ).toBe(0);
    expect(trainer.listed[0]).toMatchObject({
      states: [JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_FAILED],
      pageSize: 5,
    });
    const out = t.out();
    expect(out).toMatch(/job-a/);
    expect(out).not.toMatch(/job-b/);
  });

  it('writes JSON with --json', async () => {
    const t = io();
    expect(await runJobsCommand(['list', '--json', '--addr', service.address], t.io)).toBe(0);
    const json = JSON.parse(t.out()) as { jobs: Record<string, unknown>[] };
    expect(json.jobs).toHaveLength(3);
    expect(json.jobs[0]).toMatchObject({ id: 'job-a', state: 'running', backend: 'wasm' });
  });

  it('shows a job: spec summary, progress, result and error', async () => {
    const t = io();
    expect(await runJobsCommand(['show', 'job-a', '--addr', service.address], t.io)).toBe(0);
    const out = t.out();
    expect(out).toMatch(/^id:\s+job-a$/m);
    expect(out).toMatch(/^state:\s+running$/m);
    expect(out).toMatch(/^student:\s+preset deit_pico \(from scratch\)$/m);
    expect(out).toMatch(/^teacher:\s+registry teacher@prod$/m);
    expect(out).toMatch(/^dataset:\s+fashion-mnist, ≤100 train$/m);
    expect(out).toMatch(/^optimization:\s+4 epochs, batch 32$/m);
    expect(out).toMatch(/^progress:\s+37% {2}epoch 2\/4 step 5\/10 {2}loss 0\.5000/m);

    const b = io();
    expect(await runJobsCommand(['show', 'job-b', '--addr', service.address], b.io)).toBe(0);
    expect(b.out()).toMatch(
      /^result:\s+published tiny:3 \(sha256 cdcdcdcdcdcd\); alias prod not moved \(top-1 0\.80 does not beat 0\.81\)$/m,
    );

    const c = io();
    expect(await runJobsCommand(['show', 'job-c', '--addr', service.address], c.io)).toBe(0);
    expect(c.out()).toMatch(/^error:\s+teacher labels differ from the dataset$/m);
  });

  it('passes a server error through with exit 1', async () => {
    const t = io();
    expect(await runJobsCommand(['show', 'nope', '--addr', service.address], t.io)).toBe(1);
    expect(t.err()).toBe('deit jobs: NOT_FOUND: no job nope\n');
    const c = io();
    expect(await runJobsCommand(['cancel', 'job-b', '--addr', service.address], c.io)).toBe(1);
    expect(c.err()).toBe('deit jobs: FAILED_PRECONDITION: job job-b already ended (succeeded)\n');
  });

  it('cancels a job and prints its new state', async () => {
    const t = io();
    expect(await runJobsCommand(['cancel', 'job-a', '--addr', service.address], t.io)).toBe(0);
    expect(t.out()).toBe('job-a: cancelling\n');
    expect(trainer.jobs.get('job-a')?.state).toBe(JobState.JOB_STATE_CANCELLING);
  });

  it('watches a job to its end: exit 0 on success, 1 on failure', async () => {
    trainer.events.set('job-b', [
      { jobId: 'job-b', time: undefined, state: JobState.JOB_STATE_RUNNING },
      { jobId: 'job-b', time: undefined, progress: progress({ epoch: 2, step: 10 }) },
      { jobId: 'job-b', time: undefined, state: JobState.JOB_STATE_SUCCEEDED },
    ]);
    const t = io();
    expect(await runJobsCommand(['watch', 'job-b', '--addr', service.address], t.io)).toBe(0);
    expect(t.out()).toBe(
      [
        'job-b: running',
        'epoch 2/2 step 10/10  loss 0.5000  100.0 img/s  ETA 1m05s',
        'job-b: succeeded',
        `published tiny:3 (sha256 ${'cd'.repeat(6)})`,
        'alias prod not moved (top-1 0.80 does not beat 0.81)',
        '',
      ].join('\n'),
    );

    trainer.events.set('job-c', [
      { jobId: 'job-c', time: undefined, state: JobState.JOB_STATE_RUNNING },
      { jobId: 'job-c', time: undefined, message: 'resumed from epoch 1' },
      { jobId: 'job-c', time: undefined, state: JobState.JOB_STATE_FAILED },
    ]);
    const f = io();
    expect(await runJobsCommand(['watch', 'job-c', '--addr', service.address], f.io)).toBe(1);
    expect(f.out()).toBe('job-c: running\nresumed from epoch 1\njob-c: failed\n');
    expect(f.err()).toBe('deit jobs: job job-c failed: teacher labels differ from the dataset\n');
  });

  it('watch with --json writes one event per line and the final job', async () => {
    trainer.events.set('job-b', [{ jobId: 'job-b', time: undefined, state: JobState.JOB_STATE_SUCCEEDED }]);
    const t = io();
    expect(await runJobsCommand(['watch', 'job-b', '--json', '--addr', service.address], t.io)).toBe(0);
    const lines = t
      .out()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines[0]).toMatchObject({ event: { jobId: 'job-b', state: 'succeeded' } });
    expect(lines[1]).toMatchObject({ job: { id: 'job-b', state: 'succeeded', result: { version: 3 } } });
  });

  it('says clearly when the trainer cannot be reached', async () => {
    const addr = `127.0.0.1:${await freePort()}`;
    const t = io();
    expect(await runJobsCommand(['list', '--addr', addr], t.io)).toBe(1);
    expect(t.err()).toMatch(
      new RegExp(`^deit jobs: UNAVAILABLE: cannot reach the trainer at ${addr} \\(.+\\); is it running\\?`),
    );
  });

  it.each([
    [[], /name a subcommand/],
    [['frob'], /unknown subcommand "frob"/],
    [['show'], /jobs show takes one job id/],
    [['list', '--state', 'sleeping'], /--state must be one of/],
    [['list', '--limit', '0'], /--limit must be an integer ≥ 1/],
    [['cancel', 'x', '--limit', '3'], /--state and --limit are for `jobs list`/],
    [['list', '--frobnicate'], /Unknown option '--frobnicate'/],
  ])('refuses %j with exit 2', async (argv, message) => {
    const t = io();
    expect(await runJobsCommand([...argv, '--addr', service.address], t.io)).toBe(2);
    expect(t.err()).toMatch(message);
  });

  it('is reachable as `deit jobs`, with its own help', async () => {
    const t = io();
    expect(await runCli(['jobs', '--help'], t.io)).toBe(0);
    expect(t.out()).toMatch(/^Usage: deit jobs <subcommand>/);
    const usage = io();
    await runCli(['--help'], usage.io);
    expect(usage.out()).toMatch(/finetune --output NAME[\s\S]*jobs list\|show\|watch\|cancel/);
  });
});
