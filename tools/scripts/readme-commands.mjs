#!/usr/bin/env node
// Runs the shell blocks of README.md and then of docs/*.md (by name) as written, in order, in one bash
// session at the repository root, the way a user following them would: `npm start` lines start the
// services in the background (stopping the ones started before, as a user's Ctrl-C would) and wait until
// both listen; every other command must exit 0, and some must print what the page says they do. A
// command the pages gain without being listed below (run, or not run with a reason) fails the run, so an
// example cannot break without CI failing. CI runs this (.ci/run): `node tools/scripts/readme-commands.mjs`;
// `--list` only checks that list against the pages and prints what a run would do with each command
// (the workspace's tests run it: tools/src/readme-commands.spec.ts).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
/** `--root DIR` reads the pages of another checkout (the script's own tests use a scratch copy). */
const root = args.includes('--root')
  ? resolve(args[args.indexOf('--root') + 1] ?? '.')
  : join(import.meta.dirname, '..', '..');

/** The pages whose shell blocks are run, in this order: the README, then its reference pages. */
const PAGES = [
  'README.md',
  ...(existsSync(join(root, 'docs')) ? readdirSync(join(root, 'docs')) : [])
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];

/**
 * Every command of those pages but `npm start` lines: `expect` (an extended regular expression, case
 * ignored, that a line of its output must match) or
 * `skip` (why it is not run here; each is run by CI itself, or needs what this machine lacks).
 */
const COMMANDS = new Map([
  ['npm ci', { skip: 'CI runs it first, on a fresh clone (.ci/run)' }],
  ['npm test', { skip: 'CI runs it last (.ci/run)' }],
  ['npx deit classify examples/fashion-mnist/test-0000-ankle-boot.png --top-k 3', { expect: 'ankle boot' }],
  ['npx deit classify examples/fashion-mnist/*.png --head dist --json', { expect: '"label": *"sneaker"' }],
  ['npx deit models list', { expect: 'fmnist-deit' }],
  [
    'DEIT_GPU=cuda npm ci',
    { skip: 'CI runs its GPU step itself (.ci/run: DEIT_GPU=cuda node tools/scripts/install-native.mjs)' },
  ],
  ['DEIT_EXECUTION_PROVIDER=cuda npm start', { skip: 'needs a CUDA host' }],
  ['npm run zoo', { skip: 'retrains every default model: hours on two cores' }],
  [
    'npm run zoo -- hard',
    { skip: 'retrains the hard students (three seeds): up to an hour each on two cores' },
  ],
  ['npm run zoo -- none-seed1', { skip: 'trains one student: up to an hour on two cores' }],
  [
    'npm run zoo -- evaluate',
    { skip: 'rewrites RESULTS.md from 40k evaluations; its numbers are tied by tests' },
  ],
  [
    'export DEIT_TOKEN=$(npx deit auth new-token --name web-frontend --role classify --add-to tokens.json)',
    { expect: 'added "web-frontend" \\(classify\\) to tokens\\.json' },
  ],
  ['npx deit auth new-token --name ci --role train', { expect: '^token: [A-Za-z0-9_-]{43}$' }],
  ['printf %s "$DEIT_TOKEN" | npx deit auth hash-token', { expect: '^[0-9a-f]{64}$' }],
  [
    'npx deit auth check tokens.json',
    { expect: 'tokens\\.json: 1 token\\(s\\): web-frontend \\(classify\\)' },
  ],
  ['npx deit classify examples/fashion-mnist/test-0001-pullover.png', { expect: 'pullover' }],
  [
    'grpcurl -H "authorization: Bearer $DEIT_TOKEN" -plaintext localhost:50051 list',
    { expect: 'deit\\.inference\\.v1\\.InferenceService' },
  ],
  ['mkdir -p var/tls && cd var/tls', {}],
  ["key='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'", {}],
  ['openssl req -x509 $key -days 365 -subj /CN=deit-local-ca -keyout ca.key -out ca.crt', {}],
  ['openssl req $key -subj /CN=localhost -keyout server.key -out server.csr', {}],
  ["printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext", {}],
  [
    'openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -extfile server.ext -out server.crt',
    {},
  ],
  ['openssl req $key -subj /CN=me -keyout client.key -out client.csr', {}],
  ["printf 'extendedKeyUsage=clientAuth\\n' > client.ext", {}],
  [
    'openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -extfile client.ext -out client.crt',
    {},
  ],
  ['cd ../..', {}],
  [
    'npx deit classify examples/fashion-mnist/test-0002-trouser.png --ca var/tls/ca.crt --cert var/tls/client.crt --key var/tls/client.key',
    { expect: 'trouser' },
  ],
]);

/** What the pages' commands create at the root: a user's own copy is never overwritten. */
const CREATED = ['tokens.json', 'var/tls'];

/** Seconds `npm start` (build, model load) may take before both services listen. */
const START_TIMEOUT_S = 240;

/** A page's ```sh blocks: continuation lines joined, comments and blank lines dropped. */
function readmeCommands(text) {
  const commands = [];
  let inBlock = false;
  let pending = '';
  for (const line of text.split('\n')) {
    if (/^```(sh|bash|shell)\s*$/.test(line)) {
      inBlock = true;
      continue;
    }
    if (inBlock && line.startsWith('```')) {
      inBlock = false;
      continue;
    }
    if (!inBlock) continue;
    const joined = pending + line.trim();
    if (joined.endsWith('\\')) {
      pending = joined.slice(0, -1).trimEnd() + ' ';
      continue;
    }
    pending = '';
    // A comment starts at a `#` after whitespace (no command here has one inside quotes).
    const command = joined.replace(/\s+#\s.*$/, '').trim();
    if (command !== '' && !command.startsWith('#')) commands.push(command);
  }
  return commands;
}

const isStart = (command) => /^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*npm start$/.test(command);
const quote = (text) => `'${text.replace(/'/g, `'\\''`)}'`;

const pageCommands = PAGES.map((page) => ({
  page,
  commands: readmeCommands(readFileSync(join(root, page), 'utf8')),
}));
const commands = pageCommands.flatMap((p) => p.commands);
const unknown = commands.filter((c) => !COMMANDS.has(c) && !isStart(c));
if (unknown.length > 0) {
  console.error(
    `readme: commands in ${PAGES.join(', ')} that tools/scripts/readme-commands.mjs does not know (add each, run or skipped with a reason):\n  ${unknown.join('\n  ')}`,
  );
  process.exit(1);
}
const stale = [...COMMANDS.keys()].filter((c) => !commands.includes(c));
if (stale.length > 0) {
  console.error(
    `readme: listed here but in none of ${PAGES.join(', ')} (remove them):\n  ${stale.join('\n  ')}`,
  );
  process.exit(1);
}
if (args.includes('--list')) {
  for (const { page, commands: listed } of pageCommands) {
    for (const command of listed) {
      const { skip, expect } = COMMANDS.get(command) ?? {};
      const plan =
        isStart(command) && !skip
          ? 'start'
          : skip
            ? `not run: ${skip}`
            : `run${expect ? `, expect /${expect}/` : ''}`;
      console.log(`${page}: ${command}\n    ${plan}`);
    }
  }
  process.exit(0);
}
for (const path of CREATED) {
  if (existsSync(join(root, path))) {
    console.error(`readme: ${path} exists, and the documented commands create it: move it away first`);
    process.exit(2);
  }
}

const work = mkdtempSync(join(tmpdir(), 'deit-readme-'));
const lines = [
  'set -uo pipefail',
  `cd ${quote(root)}`,
  `export PATH=${quote(join(process.env.DEIT_DEPLOY_TOOLS_DIR ?? join(homedir(), '.cache', 'deit-serve', 'deploy-tools'), 'bin'))}:"$PATH"`,
  'started=""',
  'stop_services() { if [ -n "$started" ]; then kill -TERM -- "-$started" 2>/dev/null; while kill -0 -- "-$started" 2>/dev/null; do sleep 0.2; done; started=""; fi; }',
  'trap stop_services EXIT',
  // `npm start` in its own process group, its output in a log; ready when both services say where they listen.
  `start_services() { stop_services; local log=${quote(work)}/start-$RANDOM.log; echo "\\$ $1   (in the background: $log)"; setsid bash -c "$1" >"$log" 2>&1 & started=$!;` +
    ` for _ in $(seq $((${START_TIMEOUT_S} * 5))); do if grep -q '\\[inference\\].*gRPC on' "$log" && grep -q '\\[trainer\\].*gRPC on' "$log"; then return 0; fi;` +
    ` if ! kill -0 "$started" 2>/dev/null; then cat "$log"; echo "readme: FAILED: $1 exited"; exit 1; fi; sleep 0.2; done; cat "$log"; echo "readme: FAILED: $1 not listening after ${START_TIMEOUT_S} s"; exit 1; }`,
  // One command: run in this shell (so `export` and `cd` last), output shown and matched.
  `run() { local out=${quote(work)}/out; echo "\\$ $1"; eval "$1" >"$out" 2>&1; local rc=$?; cat "$out"; if [ $rc -ne 0 ]; then echo "readme: FAILED (exit $rc): $1"; exit 1; fi;` +
    ` if [ -n "$2" ] && ! grep -Eiq -- "$2" "$out"; then echo "readme: FAILED: the output of $1 does not match /$2/"; exit 1; fi; }`,
];
let ran = 0;
let skipped = 0;
for (const command of commands) {
  if (isStart(command)) {
    if (COMMANDS.get(command)?.skip) {
      lines.push(`echo ${quote(`# not run: ${command}: ${COMMANDS.get(command).skip}`)}`);
      skipped++;
      continue;
    }
    lines.push(`start_services ${quote(command)}`);
    ran++;
    continue;
  }
  const { skip, expect } = COMMANDS.get(command);
  if (skip) {
    lines.push(`echo ${quote(`# not run: ${command}: ${skip}`)}`);
    skipped++;
    continue;
  }
  lines.push(`run ${quote(command)} ${quote(expect ?? '')}`);
  ran++;
}
lines.push(`echo "readme: ${ran} commands run as written, ${skipped} not run (reasons above)"`);
const script = join(work, 'readme.sh');
writeFileSync(script, lines.join('\n') + '\n');
const result = spawnSync('bash', [script], { cwd: root, stdio: 'inherit' });
for (const path of CREATED) rmSync(join(root, path), { recursive: true, force: true });
rmSync(work, { recursive: true, force: true });
process.exit(result.status ?? 1);
