import { type ServiceError, status } from '@grpc/grpc-js';
import { trainerV1Client } from '@deit-serve/proto';
import { parseArgs } from 'node:util';
import {
  type Connection,
  CONNECTION_OPTIONS,
  CONNECTION_USAGE,
  connectionOf,
  unreachableHint,
} from './connection';
import { type CommandIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, intFlag, UsageError } from './options';
import { formatTable } from './table';

/** Where the trainer listens when neither `--addr` nor DEIT_TRAINER_ADDR says. */
export const DEFAULT_TRAINER_ADDR = 'localhost:50052';

const { JobState } = trainerV1Client;
type Job = trainerV1Client.Job;
type Client = trainerV1Client.TrainerServiceClient;

const USAGE = `Usage: deit jobs <subcommand> [options]

Lists, inspects, follows and cancels fine-tune jobs on the trainer.

Subcommands:
  list [--state S]... [--limit N]   jobs, newest first (S: queued, running, cancelling, succeeded, failed, cancelled)
  show ID                           a job's spec, progress, result and error
  watch ID                          follow a job until it ends (exit 0 on success, 1 on failure or cancel)
  cancel ID                         ask a queued or running job to stop; prints its new state

Options:
  --addr HOST:PORT    trainer (default: $DEIT_TRAINER_ADDR, else ${DEFAULT_TRAINER_ADDR})
  --json              machine-readable output
  -h, --help          this text

${CONNECTION_USAGE}`;

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  addr: { type: 'string' },
  state: { type: 'string', multiple: true },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const SUBCOMMANDS = ['list', 'show', 'watch', 'cancel'] as const;
type Subcommand = (typeof SUBCOMMANDS)[number];

/** `deit jobs ...`: `argv` is what follows `jobs`. */
export async function runJobsCommand(argv: string[], io: CommandIo): Promise<number> {
  let sub: Subcommand;
  let id = '';
  let addr: string;
  let connection: Connection;
  let json: boolean;
  let states: trainerV1Client.JobState[] = [];
  let limit = 0;
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    const v = parsed.values;
    if (v.help === true) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    const [name, ...rest] = parsed.positionals;
    if (name === undefined) throw new UsageError('name a subcommand: list, show, watch or cancel');
    if (!(SUBCOMMANDS as readonly string[]).includes(name))
      throw new UsageError(`unknown subcommand ${JSON.stringify(name)}`);
    sub = name as Subcommand;
    if (sub === 'list') {
      if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
      states = (v.state ?? []).map(parseState);
      limit = v.limit === undefined ? 0 : intFlag('--limit', v.limit, 1);
    } else {
      if (v.state !== undefined || v.limit !== undefined)
        throw new UsageError('--state and --limit are for `jobs list`');
      if (rest.length !== 1) throw new UsageError(`jobs ${sub} takes one job id`);
      id = rest[0] ?? '';
    }
    addr = trainerAddr(v.addr, io.env);
    connection = connectionOf(v, io.env);
    json = v.json === true;
  } catch (error) {
    io.stderr.write(`deit jobs: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return EXIT_USAGE;
  }

  const client = trainerClient(addr, connection);
  try {
    switch (sub) {
      case 'list': {
        const res = await call<trainerV1Client.ListJobsResponse>((cb) =>
          client.listJobs(trainerV1Client.ListJobsRequest.fromPartial({ states, pageSize: limit }), cb),
        );
        if (json) io.stdout.write(JSON.stringify({ jobs: res.jobs.map(jobJson) }, null, 2) + '\n');
        else io.stdout.write(formatJobTable(res.jobs));
        return EXIT_OK;
      }
      case 'show': {
        const res = await call<trainerV1Client.GetJobResponse>((cb) =>
          client.getJob(trainerV1Client.GetJobRequest.fromPartial({ jobId: id }), cb),
        );
        const job = trainerV1Client.Job.fromPartial(res.job ?? {});
        if (json) io.stdout.write(JSON.stringify(jobJson(job), null, 2) + '\n');
        else io.stdout.write(formatJobDetails(job));
        return EXIT_OK;
      }
      case 'watch':
        return await watchJob(client, id, io, json, 'deit jobs');
      case 'cancel': {
        const res = await call<trainerV1Client.CancelJobResponse>((cb) =>
          client.cancelJob(trainerV1Client.CancelJobRequest.fromPartial({ jobId: id }), cb),
        );
        const job = trainerV1Client.Job.fromPartial(res.job ?? {});
        if (json) io.stdout.write(JSON.stringify(jobJson(job), null, 2) + '\n');
        else io.stdout.write(`${job.id || id}: ${stateName(job.state)}\n`);
        return EXIT_OK;
      }
    }
  } catch (error) {
    return reportError(io, 'deit jobs', addr, json, error, connection);
  } finally {
    client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Shared with `deit finetune`.

export function trainerAddr(flag: string | undefined, env: Record<string, string | undefined>): string {
  return flag ?? (env['DEIT_TRAINER_ADDR'] || DEFAULT_TRAINER_ADDR);
}

export function trainerClient(addr: string, connection: Connection): Client {
  return new trainerV1Client.TrainerServiceClient(addr, connection.credentials, connection.options);
}

/** A unary call as a promise. */
export function call<T>(start: (cb: (err: ServiceError | null, res: T) => void) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    start((err, res) => (err ? reject(err) : resolve(res)));
  });
}

const STATE_NAMES: Record<number, string> = {
  [JobState.JOB_STATE_UNSPECIFIED]: 'unspecified',
  [JobState.JOB_STATE_QUEUED]: 'queued',
  [JobState.JOB_STATE_RUNNING]: 'running',
  [JobState.JOB_STATE_CANCELLING]: 'cancelling',
  [JobState.JOB_STATE_SUCCEEDED]: 'succeeded',
  [JobState.JOB_STATE_FAILED]: 'failed',
  [JobState.JOB_STATE_CANCELLED]: 'cancelled',
};

export function stateName(state: trainerV1Client.JobState): string {
  return STATE_NAMES[state] ?? String(state);
}

function parseState(text: string): trainerV1Client.JobState {
  const key = text.toLowerCase().replace(/^job_state_/, '');
  const found = Object.entries(STATE_NAMES).find(([n, name]) => name === key && Number(n) !== 0);
  if (!found)
    throw new UsageError(
      `--state must be one of queued, running, cancelling, succeeded, failed, cancelled, not ${JSON.stringify(text)}`,
    );
  return Number(found[0]);
}

function isTerminal(state: trainerV1Client.JobState | undefined): boolean {
  return (
    state === JobState.JOB_STATE_SUCCEEDED ||
    state === JobState.JOB_STATE_FAILED ||
    state === JobState.JOB_STATE_CANCELLED
  );
}

/**
 * Reports a failed call: INVALID_ARGUMENT and the like verbatim (the trainer lists every bad field),
 * an unreachable trainer as one clear line. Returns exit code 1.
 */
export function reportError(
  io: CommandIo,
  prefix: string,
  addr: string,
  json: boolean,
  error: unknown,
  connection?: Connection,
): number {
  const e = error as Partial<ServiceError>;
  const code = typeof e.code === 'number' ? (status[e.code] ?? String(e.code)) : 'UNKNOWN';
  // grpc-js ends connection failures with an empty "Resolution note:".
  let message = (e.details || (error instanceof Error ? error.message : String(error))).replace(
    /\.?\s*Resolution note:\s*$/,
    '',
  );
  if (code === 'UNAVAILABLE')
    message = `cannot reach the trainer at ${addr} (${message}); ${unreachableHint(connection)} Set --addr or DEIT_TRAINER_ADDR`;
  if (json) io.stderr.write(JSON.stringify({ error: { code, message } }) + '\n');
  else io.stderr.write(`${prefix}: ${code}: ${message}\n`);
  return EXIT_FAILURE;
}

// ---------------------------------------------------------------------------------------------
// Watching.

function isTty(stream: NodeJS.WritableStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** `epoch 2/10 [######----------] step 30/100  loss 0.4321  812.3 img/s  ETA 1m05s` */
export function formatProgress(p: trainerV1Client.Progress, bar: boolean): string {
  const fraction = p.stepsPerEpoch > 0 ? Math.min(1, p.step / p.stepsPerEpoch) : 0;
  const width = 20;
  const filled = Math.round(fraction * width);
  const parts = [
    `epoch ${p.epoch}/${p.epochs}`,
    ...(bar ? [`[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`] : []),
    `step ${p.step}/${p.stepsPerEpoch}`,
  ];
  const rest = [
    `loss ${(p.loss?.total ?? 0).toFixed(4)}`,
    `${p.imagesPerSecond.toFixed(1)} img/s`,
    `ETA ${formatDuration(p.etaSeconds)}`,
  ];
  return `${parts.join(' ')}  ${rest.join('  ')}`;
}

function pct(x: number | undefined): string {
  return `${((x ?? 0) * 100).toFixed(2)}%`;
}

export function formatEval(e: trainerV1Client.EvalResult): string {
  const heads = [
    `cls ${pct(e.cls?.top1)}`,
    ...(e.dist ? [`dist ${pct(e.dist.top1)}`] : []),
    `avg ${pct(e.average?.top1)}`,
  ];
  const extra = [
    ...(e.teacherTop1 > 0 ? [`teacher ${pct(e.teacherTop1)}`] : []),
    ...(e.dist ? [`cls/dist agree ${pct(e.clsDistAgreement)}`] : []),
  ];
  return (
    `eval epoch ${e.epoch} on ${e.dataset || '?'} (${e.images} images): top-1 ${heads.join(', ')}` +
    (extra.length ? `; ${extra.join(', ')}` : '')
  );
}

function resultLines(job: Job): string[] {
  const r = job.result;
  if (!r) return [];
  const lines = [`published ${r.model}:${r.version}${r.sha256 ? ` (sha256 ${r.sha256.slice(0, 12)})` : ''}`];
  const alias = job.spec?.promotion?.alias;
  if (alias) {
    const why = r.promotionReason ? ` (${r.promotionReason})` : '';
    lines.push(r.promoted ? `alias ${alias} moved to ${r.version}${why}` : `alias ${alias} not moved${why}`);
  } else if (r.promotionReason) lines.push(r.promotionReason);
  return lines;
}

/**
 * Follows WatchJob until the job ends: a live progress bar on a TTY (plain lines otherwise; one JSON
 * event per line with --json), evaluations, messages and state changes. Returns 0 when the job
 * succeeded, 1 when it failed or was cancelled.
 */
export async function watchJob(
  client: Client,
  jobId: string,
  io: CommandIo,
  json: boolean,
  prefix: string,
): Promise<number> {
  const tty = !json && isTty(io.stdout);
  let barShown = false;
  const line = (text: string) => {
    if (barShown) io.stdout.write('\r\x1b[K');
    barShown = false;
    io.stdout.write(text + '\n');
  };
  let lastState: trainerV1Client.JobState | undefined;

  await new Promise<void>((resolve, reject) => {
    const stream = client.watchJob(trainerV1Client.WatchJobRequest.fromPartial({ jobId }));
    stream.on('data', (res: trainerV1Client.WatchJobResponse) => {
      const event = res.event;
      if (!event) return;
      if (json) {
        io.stdout.write(JSON.stringify({ event: eventJson(event) }) + '\n');
        if (event.state !== undefined) lastState = event.state;
        return;
      }
      if (event.progress) {
        const text = formatProgress(event.progress, tty);
        if (tty) {
          io.stdout.write(`\r\x1b[K${text}`);
          barShown = true;
        } else line(text);
      } else if (event.eval) line(formatEval(event.eval));
      else if (event.message !== undefined) line(event.message);
      else if (event.state !== undefined) {
        if (event.state !== lastState) line(`${event.jobId || jobId}: ${stateName(event.state)}`);
        lastState = event.state;
      }
    });
    stream.on('error', reject);
    stream.on('end', () => resolve());
  }).finally(() => {
    if (barShown) io.stdout.write('\n');
  });

  // The result and error live on the job, not in the events.
  const res = await call<trainerV1Client.GetJobResponse>((cb) =>
    client.getJob(trainerV1Client.GetJobRequest.fromPartial({ jobId }), cb),
  );
  const job = trainerV1Client.Job.fromPartial(res.job ?? {});
  const state = isTerminal(job.state) ? job.state : lastState;
  if (json) io.stdout.write(JSON.stringify({ job: jobJson(job) }) + '\n');
  if (state === JobState.JOB_STATE_SUCCEEDED) {
    if (!json) for (const l of resultLines(job)) line(l);
    return EXIT_OK;
  }
  if (!json) {
    if (state === JobState.JOB_STATE_FAILED)
      io.stderr.write(`${prefix}: job ${jobId} failed${job.error ? `: ${job.error}` : ''}\n`);
    else if (state === JobState.JOB_STATE_CANCELLED)
      io.stderr.write(`${prefix}: job ${jobId} was cancelled\n`);
    else
      io.stderr.write(
        `${prefix}: the watch ended before job ${jobId} did (it is ${stateName(job.state)}); run \`deit jobs watch ${jobId}\`\n`,
      );
  }
  return EXIT_FAILURE;
}

// ---------------------------------------------------------------------------------------------
// Formatting.

function overallProgress(job: Job): string {
  const p = job.progress;
  if (job.state === JobState.JOB_STATE_SUCCEEDED) return '100%';
  if (!p || p.epochs === 0) return '-';
  const perEpoch = p.stepsPerEpoch > 0 ? Math.min(1, p.step / p.stepsPerEpoch) : 0;
  const done = (Math.max(0, p.epoch - 1) + perEpoch) / p.epochs;
  return `${Math.floor(Math.min(1, done) * 100)}%`;
}

function modelOf(job: Job): string {
  if (job.result?.model) return `${job.result.model}:${job.result.version}`;
  return job.spec?.outputModel || '-';
}

function time(d: Date | undefined): string {
  return d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}

export function formatJobTable(jobs: readonly Job[]): string {
  if (jobs.length === 0) return 'no jobs\n';
  const header = ['ID', 'STATE', 'MODEL', 'EPOCH', 'PROGRESS', 'CREATED'];
  const rows = jobs.map((j) => [
    j.id,
    stateName(j.state),
    modelOf(j),
    j.progress && j.progress.epochs > 0 ? `${j.progress.epoch}/${j.progress.epochs}` : '-',
    overallProgress(j),
    time(j.createdAt),
  ]);
  return formatTable(header, rows);
}

function studentText(s: trainerV1Client.StudentSource | undefined): string {
  if (s?.registryRef) return `registry ${s.registryRef}`;
  if (s?.safetensors) return `${s.safetensors.path} (${s.safetensors.preset})`;
  if (s?.preset) return `preset ${s.preset} (from scratch)`;
  return '-';
}

function teacherText(t: trainerV1Client.TeacherSource | undefined): string {
  if (t?.registryRef) return `registry ${t.registryRef}`;
  if (t?.onnxPath) return t.onnxPath;
  return 'none';
}

function datasetText(d: trainerV1Client.DatasetSpec | undefined): string {
  if (!d) return '-';
  let text = d.fashionMnist
    ? `fashion-mnist${d.fashionMnist.dir ? `:${d.fashionMnist.dir}` : ''}`
    : d.imageFolder
      ? `image folder ${d.imageFolder.trainDir}${d.imageFolder.valDir ? ` (val ${d.imageFolder.valDir})` : ''}`
      : '-';
  if (d.maxTrainImages) text += `, ≤${d.maxTrainImages} train`;
  if (d.maxEvalImages) text += `, ≤${d.maxEvalImages} eval`;
  return text;
}

const DISTILLATION_NAMES: Record<number, string> = { 0: 'default', 1: 'none', 2: 'soft', 3: 'hard' };

export function formatJobDetails(job: Job): string {
  const s = job.spec;
  const rows: [string, string][] = [
    ['id', job.id],
    ['state', stateName(job.state)],
    ['model', s?.outputModel || '-'],
    ['student', studentText(s?.student)],
    ['teacher', teacherText(s?.teacher)],
    ['dataset', datasetText(s?.dataset)],
  ];
  if (s) {
    const d = s.distillation;
    const o = s.optimization;
    rows.push([
      'distillation',
      `${DISTILLATION_NAMES[d?.type ?? 0] ?? '?'}` +
        (d?.alpha !== undefined ? `, alpha ${d.alpha}` : '') +
        (d?.tau !== undefined ? `, tau ${d.tau}` : ''),
    ]);
    rows.push([
      'optimization',
      `${o?.epochs || 'default'} epochs, batch ${o?.batchSize || 'default'}` +
        (o?.lr !== undefined ? `, lr ${o.lr}${o.lrFixed ? ' (fixed)' : ''}` : ''),
    ]);
    if (s.promotion?.alias)
      rows.push(['promotion', `${s.promotion.alias} if top-1 improves by ≥ ${s.promotion.minImprovement}`]);
  }
  if (job.backend) rows.push(['backend', job.backend]);
  rows.push(['created', time(job.createdAt)]);
  if (job.startedAt) rows.push(['started', time(job.startedAt)]);
  if (job.finishedAt) rows.push(['finished', time(job.finishedAt)]);
  if (job.resumes) rows.push(['resumes', String(job.resumes)]);
  if (job.progress && job.progress.epochs > 0)
    rows.push(['progress', `${overallProgress(job)}  ${formatProgress(job.progress, false)}`]);
  if (job.result) {
    rows.push(['result', resultLines(job).join('; ')]);
    if (job.result.finalEval) rows.push(['final eval', formatEval(job.result.finalEval)]);
  }
  if (job.error) rows.push(['error', job.error]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${(k + ':').padEnd(width + 1)}  ${v}`).join('\n') + '\n';
}

export function jobJson(job: Job): unknown {
  return { ...(trainerV1Client.Job.toJSON(job) as object), state: stateName(job.state) };
}

function eventJson(event: trainerV1Client.JobEvent): unknown {
  const out = trainerV1Client.JobEvent.toJSON(event) as Record<string, unknown>;
  if (event.state !== undefined) out['state'] = stateName(event.state);
  return out;
}
