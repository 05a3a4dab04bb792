import { hashToken, parseTokensFile, type Role, ROLES, type TokenEntry } from '@deit-serve/config';
import { randomBytes } from 'node:crypto';
import { chmod, readFile, rename, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { type CommandIo, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './options';

/** Random bytes of a new token: 256 bits, beyond guessing. */
const TOKEN_BYTES = 32;

const USAGE = `Usage: deit auth <subcommand> [options]

Bearer tokens for the services' tokens file (DEIT_AUTH_TOKENS_FILE, README "Security"). The file
stores each token's SHA-256, never the token.

Subcommands:
  new-token --name NAME --role ROLE [--role ROLE]... [--add-to FILE]
                      a new random token: prints it (once) and the entry to add to the tokens file;
                      with --add-to, adds the entry to FILE (created if missing, mode 0600) and
                      prints the token alone, e.g. export DEIT_TOKEN=$(deit auth new-token ...)
  hash-token [TOKEN]  the SHA-256 the tokens file stores for TOKEN (read from stdin when not given,
                      which keeps it out of the shell history)
  check FILE          checks a tokens file as the services do at start

Roles: ${ROLES.join(', ')} (classify: the inference service; train: the trainer; admin: everything).

Options:
  --json              machine-readable output
  -h, --help          this text
`;

const OPTIONS = {
  name: { type: 'string' },
  role: { type: 'string', multiple: true },
  'add-to': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** `deit auth ...`: `argv` is what follows `auth`. */
export async function runAuthCommand(argv: string[], io: CommandIo): Promise<number> {
  try {
    const parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    if (parsed.values.help === true) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    const [sub, ...rest] = parsed.positionals;
    const v = parsed.values;
    switch (sub) {
      case 'new-token': {
        if (rest.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(rest[0])}`);
        return await newToken(v.name, v.role ?? [], v.json === true, v['add-to'], io);
      }
      case 'hash-token': {
        if (rest.length > 1) throw new UsageError('hash-token takes one token at most');
        const token = rest[0] ?? (await readToken(io));
        if (!token) throw new UsageError('give a token, as an argument or on stdin');
        const sha256 = hashToken(token);
        io.stdout.write(v.json === true ? JSON.stringify({ sha256 }) + '\n' : `${sha256}\n`);
        return EXIT_OK;
      }
      case 'check': {
        if (rest.length !== 1 || !rest[0]) throw new UsageError('check takes one tokens file');
        return await checkFile(rest[0], v.json === true, io);
      }
      case undefined:
        throw new UsageError('name a subcommand: new-token, hash-token or check');
      default:
        throw new UsageError(`unknown subcommand ${JSON.stringify(sub)}`);
    }
  } catch (error) {
    if (!(error instanceof UsageError) && !(error instanceof TypeError)) throw error;
    // parseArgs reports unknown flags with TypeErrors (ERR_PARSE_ARGS_*).
    io.stderr.write(`deit auth: ${error.message}\n\n${USAGE}`);
    return EXIT_USAGE;
  }
}

async function newToken(
  name: string | undefined,
  roles: string[],
  json: boolean,
  addTo: string | undefined,
  io: CommandIo,
): Promise<number> {
  if (!name) throw new UsageError('--name NAME is required (who holds the token, e.g. web-frontend)');
  if (roles.length === 0) throw new UsageError(`--role is required: ${ROLES.join(', ')}`);
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  const entry = { name, sha256: hashToken(token), roles: roles as Role[] };
  // The entry goes through the same check the services run, so a bad name or role fails here.
  const { problems } = parseTokensFile(JSON.stringify({ tokens: [entry] }));
  if (problems.length > 0)
    throw new UsageError(problems.map((p) => p.replace(/^tokens\[0\]\.?/, '--')).join('; '));
  if (addTo !== undefined) {
    const added = await addEntry(addTo, entry, io);
    if (added !== EXIT_OK) return added;
  }
  if (json) {
    io.stdout.write(JSON.stringify({ token, entry }) + '\n');
    return EXIT_OK;
  }
  if (addTo !== undefined) {
    io.stdout.write(`${token}\n`);
    io.stderr.write(
      `added "${name}" (${entry.roles.join(', ')}) to ${addTo}; the token is shown once, above\n`,
    );
    return EXIT_OK;
  }
  io.stdout.write(
    `token: ${token}\n` +
      '  (shown once: give it to its holder, e.g. as DEIT_TOKEN; the services keep only its hash)\n' +
      'add to the tokens file\'s "tokens" list:\n' +
      `  ${JSON.stringify(entry)}\n`,
  );
  return EXIT_OK;
}

/**
 * Adds `entry` to the tokens file (a new one when missing), refusing a file that does not check out
 * or that already names `entry.name`: the result must be what the services accept. Written to a
 * private temporary file and renamed over the old one, so a reader never sees half a file.
 */
async function addEntry(file: string, entry: TokenEntry, io: CommandIo): Promise<number> {
  let tokens: TokenEntry[] = [];
  try {
    const parsed = parseTokensFile(await readFile(file, 'utf8'));
    if (parsed.problems.length > 0) {
      io.stderr.write(
        `deit auth: ${file} is not a valid tokens file, left unchanged:\n${parsed.problems.map((p) => `  - ${p}\n`).join('')}`,
      );
      return EXIT_FAILURE;
    }
    tokens = parsed.tokens;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      io.stderr.write(`deit auth: cannot read ${file}: ${(error as Error).message}\n`);
      return EXIT_FAILURE;
    }
  }
  if (tokens.some((t) => t.name === entry.name)) {
    io.stderr.write(`deit auth: ${file} already has a token named "${entry.name}"; choose another --name\n`);
    return EXIT_FAILURE;
  }
  const text = JSON.stringify({ tokens: [...tokens, entry] }, null, 2) + '\n';
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text, { mode: 0o600 });
  await chmod(temporary, 0o600);
  await rename(temporary, file);
  return EXIT_OK;
}

async function readToken(io: CommandIo): Promise<string> {
  if (!io.stdin) return '';
  const chunks: Buffer[] = [];
  for await (const chunk of io.stdin)
    chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk)));
  // The line a shell or `echo` ends the token with is not part of it.
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function checkFile(file: string, json: boolean, io: CommandIo): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    io.stderr.write(`deit auth: cannot read ${file}: ${(error as Error).message}\n`);
    return EXIT_FAILURE;
  }
  const { tokens, problems } = parseTokensFile(text);
  if (json) {
    const out = {
      ok: problems.length === 0,
      tokens: tokens.map(({ name, roles }) => ({ name, roles })),
      problems,
    };
    io.stdout.write(JSON.stringify(out) + '\n');
  } else if (problems.length === 0) {
    io.stdout.write(
      `${file}: ${tokens.length} token(s): ${tokens.map((t) => `${t.name} (${t.roles.join(', ')})`).join(', ')}\n`,
    );
  } else {
    io.stderr.write(`deit auth: ${file}:\n${problems.map((p) => `  - ${p}\n`).join('')}`);
  }
  return problems.length === 0 ? EXIT_OK : EXIT_FAILURE;
}
