import { runModelsCommand } from '@deit-serve/registry';

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

type Command = (argv: string[], io: CliIo) => Promise<number>;

const USAGE = `usage: deit <command> [options]

commands:
  models list|show|promote|rollback|verify|gc   manage the model registry (deit models --help)
`;

const COMMANDS: Record<string, Command> = {
  models: (argv, io) => runModelsCommand(argv, io),
};

/** Dispatches `deit <command> ...`; returns the process exit code (2 for usage errors). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.stderr.write(`deit: unknown command "${name}"\n${USAGE}`);
    return 2;
  }
  return command(rest, io);
}
