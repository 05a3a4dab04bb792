import { Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { inferenceV1Client } from '@deit-serve/proto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  type Connection,
  CONNECTION_OPTIONS,
  CONNECTION_USAGE,
  type ConnectionFlags,
  connectionOf,
  unreachableHint,
} from './connection';
import { type CommandIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, positiveIntFlag, UsageError } from './options';
import { formatTable } from './table';

/** Where the inference service listens when neither `--addr` nor DEIT_INFERENCE_ADDR says. */
export const DEFAULT_INFERENCE_ADDR = 'localhost:50051';
/** Per-image deadline when `--timeout-ms` is not given. */
export const DEFAULT_TIMEOUT_MS = 30_000;
/** Images classified at once; more wait for a slot. */
const CONCURRENCY = 8;

const USAGE = `Usage: deit classify IMAGE... [options]

Classifies images (JPEG, PNG, WebP...) with the inference service and prints the top classes.

Options:
  --addr HOST:PORT    inference service (default: $DEIT_INFERENCE_ADDR, else ${DEFAULT_INFERENCE_ADDR})
  --model REF         NAME, NAME@ALIAS or NAME:VERSION (default: the server's default model)
  --head cls|dist|avg class-token head, distillation head, or the mean of their logits (server default: avg)
  --top-k K           classes per image (server default: 5)
  --timeout-ms MS     deadline per image (default ${DEFAULT_TIMEOUT_MS})
  --json              machine-readable output
  -h, --help          this text

${CONNECTION_USAGE}`;

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  addr: { type: 'string' },
  model: { type: 'string' },
  head: { type: 'string' },
  'top-k': { type: 'string' },
  'timeout-ms': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const { Head } = inferenceV1Client;

const HEADS: Record<string, inferenceV1Client.Head> = {
  cls: Head.HEAD_CLS,
  dist: Head.HEAD_DIST,
  avg: Head.HEAD_AVERAGE,
  average: Head.HEAD_AVERAGE,
};

const HEAD_NAMES: Partial<Record<inferenceV1Client.Head, string>> = {
  [Head.HEAD_CLS]: 'cls',
  [Head.HEAD_DIST]: 'dist',
  [Head.HEAD_AVERAGE]: 'avg',
};

interface Settings {
  addr: string;
  model: string;
  head: inferenceV1Client.Head;
  topK: number;
  timeoutMs: number;
  json: boolean;
  connection: Connection;
}

type Outcome =
  | { file: string; response: inferenceV1Client.ClassifyResponse }
  | { file: string; error: { code: string; message: string } };

/**
 * `deit classify ...`: `argv` is what follows `classify`. Returns the exit code: 0 when every image
 * was classified, 1 when any failed (each failure is reported), 2 for a wrong command line.
 */
export async function runClassifyCommand(argv: string[], io: CommandIo): Promise<number> {
  let settings: Settings;
  let files: string[];
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    if (parsed.values.help === true) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    settings = settingsOf(parsed.values, io.env);
    files = parsed.positionals;
    if (files.length === 0) throw new UsageError('name at least one image file');
  } catch (error) {
    io.stderr.write(`deit classify: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return EXIT_USAGE;
  }

  // Every file is read before anything is sent: a typo fails fast, without a half-printed table.
  let images: { file: string; bytes: Buffer }[];
  try {
    images = await Promise.all(files.map(async (file) => ({ file, bytes: await readImage(file) })));
  } catch (error) {
    return fail(io, settings.json, 'NOT_FOUND', (error as Error).message);
  }

  const client = new inferenceV1Client.InferenceServiceClient(
    settings.addr,
    settings.connection.credentials,
    settings.connection.options,
  );
  try {
    const outcomes = await mapLimited(images, CONCURRENCY, async ({ file, bytes }): Promise<Outcome> => {
      try {
        return { file, response: await classify(client, settings, bytes) };
      } catch (error) {
        const e = error as ServiceError;
        // grpc-js ends connection failures with an empty "Resolution note:".
        const message = (e.details || e.message).replace(/\.?\s*Resolution note:\s*$/, '');
        return { file, error: { code: status[e.code] ?? String(e.code), message } };
      }
    });
    // The service being down is one problem, not one per image.
    const unreachable = outcomes.find((o) => 'error' in o && o.error.code === 'UNAVAILABLE');
    if (unreachable && outcomes.every((o) => 'error' in o) && 'error' in unreachable) {
      return fail(
        io,
        settings.json,
        unreachable.error.code,
        `cannot reach the inference service at ${settings.addr} (${unreachable.error.message}); ` +
          `${unreachableHint(settings.connection)} Set --addr or DEIT_INFERENCE_ADDR`,
      );
    }
    if (settings.json) io.stdout.write(JSON.stringify({ results: outcomes.map(toJson) }, null, 2) + '\n');
    else io.stdout.write(formatOutcomes(outcomes));
    for (const o of outcomes) {
      if ('error' in o && !settings.json)
        io.stderr.write(`deit classify: ${o.file}: ${o.error.code}: ${o.error.message}\n`);
    }
    return outcomes.some((o) => 'error' in o) ? EXIT_FAILURE : EXIT_OK;
  } finally {
    client.close();
  }
}

function settingsOf(
  values: {
    addr?: string;
    model?: string;
    head?: string;
    'top-k'?: string;
    'timeout-ms'?: string;
    json?: boolean;
  } & ConnectionFlags,
  env: Record<string, string | undefined>,
): Settings {
  const head = values.head === undefined ? Head.HEAD_UNSPECIFIED : HEADS[values.head.toLowerCase()];
  if (head === undefined)
    throw new UsageError(`--head must be cls, dist or avg, not ${JSON.stringify(values.head)}`);
  return {
    addr: values.addr ?? env['DEIT_INFERENCE_ADDR'] ?? DEFAULT_INFERENCE_ADDR,
    model: values.model ?? '',
    head,
    topK: values['top-k'] === undefined ? 0 : positiveIntFlag('--top-k', values['top-k']),
    timeoutMs:
      values['timeout-ms'] === undefined
        ? DEFAULT_TIMEOUT_MS
        : positiveIntFlag('--timeout-ms', values['timeout-ms']),
    json: values.json === true,
    connection: connectionOf(values, env),
  };
}

async function readImage(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (error as Error).message;
    throw new Error(`cannot read ${file}: ${why}`);
  }
}

function classify(
  client: inferenceV1Client.InferenceServiceClient,
  settings: Settings,
  image: Buffer,
): Promise<inferenceV1Client.ClassifyResponse> {
  const request = inferenceV1Client.ClassifyRequest.fromPartial({
    model: settings.model,
    image,
    head: settings.head,
    topK: settings.topK,
  });
  return new Promise((resolve, reject) =>
    client.classify(request, new Metadata(), { deadline: Date.now() + settings.timeoutMs }, (err, res) =>
      err ? reject(err) : resolve(res),
    ),
  );
}

async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function fail(io: CommandIo, json: boolean, code: string, message: string): number {
  if (json) io.stderr.write(JSON.stringify({ error: { code, message } }) + '\n');
  else io.stderr.write(`deit classify: ${message}\n`);
  return EXIT_FAILURE;
}

function headName(head: inferenceV1Client.Head): string {
  return HEAD_NAMES[head] ?? String(head);
}

/** `agree` / `differ (cls 3, dist 7)` with KL(p_cls ‖ p_dist), or `n/a` for single-head models. */
function disagreementText(
  res: inferenceV1Client.ClassifyResponse,
  labels: (index: number) => string,
): string {
  const d = res.disagreement;
  if (!d?.available) return 'n/a';
  const verdict = d.top1Match ? 'agree' : `differ (cls ${labels(d.clsTop1)}, dist ${labels(d.distTop1)})`;
  return `${verdict}, KL ${d.klDivergence.toFixed(4)}`;
}

function formatOutcomes(outcomes: readonly Outcome[]): string {
  const header = ['FILE', 'MODEL', 'HEAD', '#', 'LABEL', 'PROBABILITY', 'CLS/DIST'];
  const rows: string[][] = [];
  for (const o of outcomes) {
    if ('error' in o) {
      rows.push([o.file, '-', '-', '-', `error: ${o.error.code}`, '-', '-']);
      continue;
    }
    const res = o.response;
    const model = res.model ? `${res.model.name}:${res.model.version}` : '?';
    // Labels of classes outside the top-k are not in the response; their index stands in.
    const label = (index: number) =>
      res.predictions.find((p) => p.index === index)?.label ?? `class ${index}`;
    res.predictions.forEach((p, rank) => {
      const first = rank === 0;
      rows.push([
        first ? o.file : '',
        first ? model : '',
        first ? headName(res.head) : '',
        String(rank + 1),
        p.label,
        p.probability.toFixed(4),
        first ? disagreementText(res, label) : '',
      ]);
    });
  }
  return formatTable(header, rows);
}

function toJson(o: Outcome): unknown {
  if ('error' in o) return o;
  const res = o.response;
  return {
    file: o.file,
    model: res.model,
    head: headName(res.head),
    predictions: res.predictions,
    disagreement: res.disagreement?.available
      ? {
          top1Match: res.disagreement.top1Match,
          klDivergence: res.disagreement.klDivergence,
          clsTop1: res.disagreement.clsTop1,
          distTop1: res.disagreement.distTop1,
        }
      : null,
    timing: res.timing,
  };
}
