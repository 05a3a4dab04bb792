import { DEFAULT_REGISTRY_DIR } from '@deit-serve/config';
import { DomainError, InvalidArgumentError } from '@deit-serve/core';
import {
  DirectoryRegistry,
  parseModelRef,
  type BrokenAlias,
  type Manifest,
  type ModelRegistry,
  type VerifyReport,
} from '@deit-serve/registry';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { importModelCommand } from './import-model';
import { type CommandIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, positiveIntFlag, UsageError } from './options';
import { formatTable } from './table';

/** Versions `models gc` keeps per model when `--keep` is not given. */
export const DEFAULT_GC_KEEP = 5;

const USAGE = `Usage: deit models <command> [options]

Commands:
  list [MODEL]                          models, or the versions of MODEL
  show REF                              manifest of a version (files are verified)
  promote REF --alias A [--reason R]    point alias A of the model at the version REF resolves to
  rollback NAME --alias A [--reason R]  undo the last move of alias A
  repair NAME                           rewrite damaged alias files of NAME from the alias history
  verify [REF]                          check sha256 and size of every file (all versions when no REF)
  gc [--keep N] [--dry-run]             keep the newest N versions per model (default ${DEFAULT_GC_KEEP}) and aliased ones
  import --safetensors FILE ...         publish a timm checkpoint as a new version (deit models import --help)

REF is NAME (production alias if set, else the newest version), NAME@ALIAS or NAME:VERSION.

Options:
  --registry DIR   registry directory (default: $DEIT_REGISTRY_DIR, else ./${DEFAULT_REGISTRY_DIR})
  --actor WHO      recorded in the alias history (default: $DEIT_ACTOR, else user@host)
  --json           machine-readable output
  -h, --help       this text
`;

const OPTIONS = {
  registry: { type: 'string' },
  alias: { type: 'string' },
  reason: { type: 'string' },
  actor: { type: 'string' },
  keep: { type: 'string' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

interface Context {
  registry: ModelRegistry;
  values: Values;
  args: string[];
  io: CommandIo;
  json: boolean;
}

/**
 * `deit models ...`: `argv` is what follows `models` on the command line. Returns the exit code instead of
 * exiting so that the bin decides and tests can call it in-process.
 */
export async function runModelsCommand(argv: string[], io: CommandIo): Promise<number> {
  // `import` has its own flags (and needs the model and packaging libraries).
  if (argv[0] === 'import') return importModelCommand(argv.slice(1), io);
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    io.stderr.write(`deit models: ${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  const [command, ...args] = positionals;
  if (values.help === true) {
    io.stdout.write(USAGE);
    return EXIT_OK;
  }
  if (command === undefined) {
    io.stderr.write(`deit models: missing command\n\n${USAGE}`);
    return EXIT_USAGE;
  }
  const json = values.json === true;
  try {
    const handler = COMMANDS[command];
    if (handler === undefined) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    const dir = values.registry ?? io.env['DEIT_REGISTRY_DIR'] ?? DEFAULT_REGISTRY_DIR;
    const registry = await DirectoryRegistry.open(resolve(dir), { create: false });
    return await handler({ registry, values, args, io, json });
  } catch (error) {
    return reportError(error, io, json);
  }
}

function reportError(error: unknown, io: CommandIo, json: boolean): number {
  const usage = error instanceof UsageError || error instanceof InvalidArgumentError;
  const kind = error instanceof DomainError ? error.kind : usage ? 'INVALID_ARGUMENT' : 'INTERNAL';
  const message = error instanceof Error ? error.message : String(error);
  if (json) io.stderr.write(JSON.stringify({ error: { kind, message } }) + '\n');
  else io.stderr.write(`deit models: ${message}\n` + (error instanceof UsageError ? `\n${USAGE}` : ''));
  return usage ? EXIT_USAGE : EXIT_FAILURE;
}

const COMMANDS: Record<string, ((ctx: Context) => Promise<number>) | undefined> = {
  list: listCommand,
  show: showCommand,
  promote: promoteCommand,
  rollback: rollbackCommand,
  repair: repairCommand,
  verify: verifyCommand,
  gc: gcCommand,
};

function positional(ctx: Context, count: { min: number; max: number }, what: string): string[] {
  if (ctx.args.length < count.min) throw new UsageError(`missing ${what}`);
  if (ctx.args.length > count.max)
    throw new UsageError(`unexpected argument ${JSON.stringify(ctx.args[count.max])}`);
  return ctx.args;
}

function requireAlias(ctx: Context): string {
  const alias = ctx.values.alias;
  if (alias === undefined) throw new UsageError('missing --alias');
  return alias;
}

function print(ctx: Context, text: string): void {
  ctx.io.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

function printJson(ctx: Context, value: unknown): void {
  ctx.io.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

function fraction(value: number | null | undefined): string {
  return value === null || value === undefined ? '-' : value.toFixed(4);
}

function aliasesOf(aliases: Record<string, number>, version: number): string[] {
  return Object.entries(aliases)
    .filter(([, v]) => v === version)
    .map(([a]) => a)
    .sort();
}

async function listCommand(ctx: Context): Promise<number> {
  const [model] = positional(ctx, { min: 0, max: 1 }, 'MODEL');
  const { registry } = ctx;
  if (model === undefined) {
    const models = [];
    for (const name of await registry.listModels()) {
      const versions = await registry.listVersions(name);
      const { aliases, broken } = await registry.inspectAliases(name);
      models.push({ name, versions, aliases, brokenAliases: broken });
    }
    if (ctx.json) {
      printJson(ctx, { models });
    } else if (models.length === 0) {
      print(ctx, 'no models');
    } else {
      const rows = models.map((m) => [
        m.name,
        String(m.versions.length),
        String(m.versions[m.versions.length - 1] ?? '-'),
        [
          ...Object.entries(m.aliases).map(([a, v]) => [a, String(v)]),
          ...m.brokenAliases.map((b) => [b.alias, 'DAMAGED']),
        ]
          .sort(([a = ''], [b = '']) => a.localeCompare(b))
          .map(([a, v]) => `${a}=${v}`)
          .join(' ') || '-',
      ]);
      print(ctx, formatTable(['MODEL', 'VERSIONS', 'LATEST', 'ALIASES'], rows));
      for (const m of models) reportBroken(ctx, m.name, m.brokenAliases);
    }
    return EXIT_OK;
  }

  if (parseModelRef(model).kind !== 'default') {
    throw new UsageError(`list takes a model name, not a reference: ${JSON.stringify(model)}`);
  }
  const versions = await registry.listVersions(model);
  const { aliases, broken } = await registry.inspectAliases(model);
  const entries: { version: number; aliases: string[]; manifest?: Manifest; problem?: string }[] = [];
  for (const version of versions) {
    try {
      const { manifest } = await registry.getManifest(
        { name: model, kind: 'version', version },
        { integrity: 'size' },
      );
      entries.push({ version, aliases: aliasesOf(aliases, version), manifest });
    } catch (error) {
      // One damaged version must not hide the others; `verify` is the command that fails on it.
      if (!(error instanceof DomainError)) throw error;
      entries.push({ version, aliases: aliasesOf(aliases, version), problem: error.message });
    }
  }
  if (ctx.json) {
    printJson(ctx, {
      model,
      versions: entries.map((e) => ({
        version: e.version,
        aliases: e.aliases,
        created_at: e.manifest?.created_at ?? null,
        preset: e.manifest?.preset ?? null,
        metrics: e.manifest?.metrics ?? null,
        problem: e.problem ?? null,
      })),
      brokenAliases: broken,
    });
    return EXIT_OK;
  }
  const rows = entries.map((e) =>
    e.manifest === undefined
      ? [String(e.version), '-', `DAMAGED: ${e.problem ?? ''}`, '-', '-', e.aliases.join(' ') || '-']
      : [
          String(e.version),
          e.manifest.created_at,
          e.manifest.preset,
          fraction(e.manifest.metrics?.top1.cls),
          fraction(e.manifest.metrics?.top1.dist),
          e.aliases.join(' ') || '-',
        ],
  );
  print(ctx, formatTable(['VERSION', 'CREATED', 'PRESET', 'TOP1-CLS', 'TOP1-DIST', 'ALIASES'], rows));
  reportBroken(ctx, model, broken);
  return EXIT_OK;
}

/** Damaged alias files go to stderr, so that the table on stdout keeps its shape. */
function reportBroken(ctx: Context, model: string, broken: readonly BrokenAlias[]): void {
  for (const b of broken) {
    const recorded =
      b.lastRecorded === null ? 'no target in the history' : `the history last set it to ${b.lastRecorded}`;
    ctx.io.stderr.write(
      `damaged alias file ${b.file}: ${b.problem} (${recorded}); \`deit models repair ${model}\` restores it\n`,
    );
  }
}

async function showCommand(ctx: Context): Promise<number> {
  const [ref] = positional(ctx, { min: 1, max: 1 }, 'REF');
  const info = await ctx.registry.getManifest(ref ?? '');
  const aliases = aliasesOf((await ctx.registry.inspectAliases(info.model)).aliases, info.version);
  const { manifest } = info;
  if (ctx.json) {
    printJson(ctx, {
      model: info.model,
      version: info.version,
      via: info.via,
      alias: info.alias ?? null,
      aliases,
      integrity: 'ok',
      manifest,
    });
    return EXIT_OK;
  }
  const via =
    info.via === 'alias'
      ? `via alias ${info.alias ?? ''}`
      : info.via === 'latest'
        ? 'latest version'
        : 'by version';
  const input = manifest.input;
  const metrics = manifest.metrics;
  const lineage = manifest.lineage;
  const rows: [string, string][] = [
    ['created', manifest.created_at],
    ['architecture', `${manifest.architecture} (${manifest.preset})`],
    [
      'input',
      `${input.name} ${input.channels}x${input.image_size}x${input.image_size}, ${input.interpolation}, crop_pct ${input.crop_pct}, ` +
        `mean [${input.mean.join(', ')}], std [${input.std.join(', ')}]`,
    ],
    ['outputs', `cls=${manifest.outputs.cls} dist=${manifest.outputs.dist ?? '-'}`],
    ['labels', `${Object.keys(manifest.labels).length} classes`],
    [
      'metrics',
      metrics === null
        ? '-'
        : `${metrics.eval_set}: top1 cls ${fraction(metrics.top1.cls)}, dist ${fraction(metrics.top1.dist)}, ` +
          `avg ${fraction(metrics.top1.avg)}, teacher ${fraction(metrics.teacher_top1)}`,
    ],
    [
      'lineage',
      lineage === null
        ? '-'
        : [
            `parent ${lineage.parent === null ? '-' : `${lineage.parent.name}:${lineage.parent.version}`}`,
            `teacher ${lineage.teacher ?? '-'}`,
            `dataset ${lineage.dataset === null ? '-' : `${lineage.dataset.name}${lineage.dataset.sha256 === null ? '' : ` (sha256 ${lineage.dataset.sha256.slice(0, 12)})`}`}`,
            `git ${lineage.git_commit ?? '-'}`,
            `backend ${lineage.backend ?? '-'}`,
          ].join(', '),
    ],
    [
      'self-check',
      manifest.self_check === null
        ? '-'
        : `outputs ${Object.keys(manifest.self_check.expected).join(', ')}, atol ${manifest.self_check.tolerance.atol}`,
    ],
    ['aliases', aliases.join(' ') || '-'],
    ['integrity', 'ok'],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const files = formatTable(
    ['FILE', 'SIZE', 'SHA256'],
    Object.entries(manifest.files).map(([path, entry]) => [path, String(entry.size), entry.sha256]),
  );
  print(
    ctx,
    `${info.model}:${info.version} (${via})\n` +
      rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') +
      '\n\n' +
      files,
  );
  return EXIT_OK;
}

function actorOf(ctx: Context): string | undefined {
  return ctx.values.actor ?? ctx.io.env['DEIT_ACTOR'];
}

async function promoteCommand(ctx: Context): Promise<number> {
  const [ref] = positional(ctx, { min: 1, max: 1 }, 'REF');
  const alias = requireAlias(ctx);
  const target = await ctx.registry.resolve(ref ?? '');
  const entry = await ctx.registry.setAlias(target.model, alias, target.version, {
    actor: actorOf(ctx),
    reason: ctx.values.reason,
  });
  if (ctx.json) printJson(ctx, entry);
  else print(ctx, `${entry.model}@${alias}: ${entry.from ?? '(unset)'} -> ${entry.to ?? '(unset)'}`);
  return EXIT_OK;
}

async function rollbackCommand(ctx: Context): Promise<number> {
  const [name] = positional(ctx, { min: 1, max: 1 }, 'NAME');
  const alias = requireAlias(ctx);
  const ref = parseModelRef(name ?? '');
  if (ref.kind !== 'default')
    throw new UsageError(`rollback takes a model name, not ${JSON.stringify(name)}`);
  const entry = await ctx.registry.rollback(ref.name, alias, {
    actor: actorOf(ctx),
    reason: ctx.values.reason,
  });
  if (ctx.json) printJson(ctx, entry);
  else
    print(
      ctx,
      `${entry.model}@${alias}: ${entry.from ?? '(unset)'} -> ${entry.to ?? '(unset)'} (rolled back)`,
    );
  return EXIT_OK;
}

async function repairCommand(ctx: Context): Promise<number> {
  const [name] = positional(ctx, { min: 1, max: 1 }, 'NAME');
  const ref = parseModelRef(name ?? '');
  if (ref.kind !== 'default') throw new UsageError(`repair takes a model name, not ${JSON.stringify(name)}`);
  const repaired = await ctx.registry.repairAliases(ref.name);
  if (ctx.json) {
    printJson(ctx, { model: ref.name, repaired });
    return EXIT_OK;
  }
  const lines = repaired.map((r) =>
    r.restored === null
      ? `${ref.name}@${r.alias}: no history to restore it from; ${r.file} set aside, the alias is unset`
      : `${ref.name}@${r.alias}: restored to ${r.restored} from the alias history (${r.file})`,
  );
  print(ctx, lines.length > 0 ? lines.join('\n') : `${ref.name}: no damaged alias files`);
  return EXIT_OK;
}

async function verifyCommand(ctx: Context): Promise<number> {
  const [ref] = positional(ctx, { min: 0, max: 1 }, 'REF');
  const reports: VerifyReport[] = [];
  if (ref !== undefined) {
    reports.push(await ctx.registry.verify(ref));
  } else {
    for (const model of await ctx.registry.listModels()) {
      for (const version of await ctx.registry.listVersions(model)) {
        reports.push(await ctx.registry.verify({ name: model, kind: 'version', version }));
      }
    }
  }
  const ok = reports.every((r) => r.ok);
  if (ctx.json) {
    printJson(ctx, { ok, versions: reports });
  } else {
    const lines: string[] = [];
    for (const report of reports) {
      lines.push(`${report.model}:${report.version}  ${report.ok ? 'ok' : 'FAILED'}`);
      if (report.problem !== undefined) lines.push(`  ${report.problem}`);
      for (const file of report.files) if (!file.ok) lines.push(`  ${file.problem ?? file.path}`);
    }
    print(ctx, lines.length > 0 ? lines.join('\n') : 'no versions');
  }
  return ok ? EXIT_OK : EXIT_FAILURE;
}

async function gcCommand(ctx: Context): Promise<number> {
  positional(ctx, { min: 0, max: 0 }, '');
  const keepText = ctx.values.keep;
  const keepLast = keepText === undefined ? DEFAULT_GC_KEEP : positiveIntFlag('--keep', keepText);
  const dryRun = ctx.values['dry-run'] === true;
  const report = await ctx.registry.gc({ keepLast, dryRun });
  if (ctx.json) {
    printJson(ctx, { dryRun, keepLast, ...report });
    return EXIT_OK;
  }
  const verb = dryRun ? 'would remove' : 'removed';
  const lines = [
    ...report.removed.map((r) => `${verb} ${r.model}:${r.version}`),
    ...report.protected.map((p) => `kept ${p.model}:${p.version} (${p.reason})`),
    ...report.tempRemoved.map((t) => `${verb} ${t}`),
  ];
  print(ctx, lines.length > 0 ? lines.join('\n') : `nothing to remove (keeping ${keepLast} per model)`);
  return EXIT_OK;
}
