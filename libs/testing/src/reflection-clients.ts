import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Reflection clients that are not this project's code, for end-to-end tests of server reflection:
 * `buf curl` (from the `@bufbuild/buf` dev dependency) and grpcurl (installed by
 * `tools/scripts/ci-deploy.sh --tools-only` into the deploy tools folder, or found on PATH).
 */
const workspaceRoot = join(__dirname, '..', '..', '..');

export interface ToolRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[], timeoutMs = 30_000): Promise<ToolRun> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `buf curl` over plain-text HTTP/2 with the schema taken from the server's reflection. */
export function bufCurl(address: string, args: readonly string[]): Promise<ToolRun> {
  const buf = join(workspaceRoot, 'node_modules', '.bin', 'buf');
  return run(buf, [
    'curl',
    '--protocol',
    'grpc',
    '--http2-prior-knowledge',
    ...args.map((a) => a.replace('{addr}', `http://${address}`)),
  ]);
}

/** grpcurl's path: the deploy tools folder (what CI installs), else PATH; undefined when absent. */
export function grpcurlPath(): string | undefined {
  const tools =
    process.env['DEIT_DEPLOY_TOOLS_DIR'] ?? join(homedir(), '.cache', 'deit-serve', 'deploy-tools');
  const candidates = [
    join(tools, 'bin', 'grpcurl'),
    ...(process.env['PATH'] ?? '').split(':').map((d) => join(d, 'grpcurl')),
  ];
  return candidates.find((c) => c !== 'grpcurl' && existsSync(c));
}

/** grpcurl in plain text against `address`: `grpcurl -plaintext [flags] address [rest]`. */
export function grpcurl(
  binary: string,
  address: string,
  rest: readonly string[],
  flags: readonly string[] = [],
): Promise<ToolRun> {
  return run(binary, ['-plaintext', ...flags, address, ...rest]);
}
