import { runAuthCommand } from './commands/auth';
import { runClassifyCommand } from './commands/classify';
import { exportCommand } from './commands/export';
import { runFinetuneCommand } from './commands/finetune';
import { runJobsCommand } from './commands/jobs';
import { runModelsCommand } from './commands/models';
import type { CommandIo } from './commands/options';

/** What every command reads and writes besides its arguments. */
export type CliIo = CommandIo;

type Command = (argv: string[], io: CliIo) => Promise<number>;

const USAGE = `usage: deit <command> [options]

commands:
  export --preset NAME --out FILE.onnx          export a DeiT / RegNetY preset to ONNX (deit export --help)
  models list|show|promote|rollback|verify|gc   manage the model registry (deit models --help)
  models import --safetensors FILE ...          publish a timm checkpoint (deit models import --help)
  classify IMAGE... [--model REF] [--head H]    classify images with the inference service (deit classify --help)
  finetune --output NAME STUDENT [--watch]      start a distillation fine-tune (deit finetune --help)
  jobs list|show|watch|cancel                   manage fine-tune jobs on the trainer (deit jobs --help)
  auth new-token|hash-token|check               bearer tokens for the services (deit auth --help)
`;

const COMMANDS: Record<string, Command> = {
  export: exportCommand,
  models: (argv, io) => runModelsCommand(argv, io),
  classify: (argv, io) => runClassifyCommand(argv, io),
  finetune: (argv, io) => runFinetuneCommand(argv, io),
  jobs: (argv, io) => runJobsCommand(argv, io),
  auth: (argv, io) => runAuthCommand(argv, io),
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
