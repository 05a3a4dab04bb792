/**
 * Entry module of a job's worker process (forked by JobRunner). Runs one job function, outside the
 * trainer's event loop, and relays what it reports over IPC. It keeps no state of its own: the runner
 * persists everything, and a worker whose runner dies exits at once so that no job ever runs twice.
 */
import { createRequire } from 'node:module';
import { JobAbortedError, type JobContext, type JobFunction } from './job-function';
import { WORKER_EXIT, type RunnerMessage, type WorkerMessage } from './worker-protocol';

const load = createRequire(__filename);
const controller = new AbortController();
const checkpointAcks = new Map<number, () => void>();
let nextCheckpointId = 1;
let started = false;

function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

function describe(error: unknown): { error: string; stack?: string } {
  if (error instanceof Error)
    return { error: error.message, ...(error.stack !== undefined && { stack: error.stack }) };
  return { error: String(error) };
}

async function run(start: Extract<RunnerMessage, { type: 'start' }>): Promise<void> {
  try {
    const exported = (load(start.module) as Record<string, unknown>)[start.exportName];
    if (typeof exported !== 'function') {
      throw new Error(`${start.module} exports no job function named ${JSON.stringify(start.exportName)}`);
    }
    const ctx: JobContext = {
      jobId: start.jobId,
      spec: start.spec,
      workDir: start.workDir,
      ...(start.resumeFrom && { resumeFrom: start.resumeFrom }),
      attempt: start.attempt,
      ...(start.config !== undefined && { config: start.config }),
      signal: controller.signal,
      report: {
        progress: (progress) => void send({ type: 'progress', progress }),
        eval: (result) => void send({ type: 'eval', eval: result }),
        checkpoint: (path, epoch) => {
          const id = nextCheckpointId++;
          return new Promise<void>((resolve) => {
            checkpointAcks.set(id, resolve);
            void send({ type: 'checkpoint', id, path, epoch });
          });
        },
        log: (message) => void send({ type: 'log', message }),
        backend: (name) => void send({ type: 'backend', name }),
      },
    };
    const result: unknown = await (exported as JobFunction)(ctx);
    await send({ type: 'done', result: result ?? null });
  } catch (error) {
    await send({ type: 'failed', ...describe(error), aborted: controller.signal.aborted });
  }
  // The job function may leave handles behind (backends, timers); the job is over either way.
  process.exit(WORKER_EXIT.ok);
}

if (!process.send) {
  console.error('worker: start me through JobRunner (child_process.fork with an IPC channel)');
  process.exit(WORKER_EXIT.usage);
}

process.on('disconnect', () => process.exit(WORKER_EXIT.orphaned));
process.on('message', (message: RunnerMessage) => {
  switch (message.type) {
    case 'start':
      if (started) return;
      started = true;
      void run(message);
      return;
    case 'abort':
      if (!controller.signal.aborted) controller.abort(new JobAbortedError(message.reason));
      return;
    case 'checkpoint-recorded':
      checkpointAcks.get(message.id)?.();
      checkpointAcks.delete(message.id);
      return;
  }
});
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (error: unknown) => {
    void send({ type: 'failed', ...describe(error), aborted: controller.signal.aborted }).finally(() =>
      process.exit(WORKER_EXIT.uncaught),
    );
  });
}
