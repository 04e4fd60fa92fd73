/** The lory command-line program: global options and the registered commands. */
import { Command, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../runtime/index.js';
import { registerDoctor } from './commands/doctor.js';
import { registerPrepare } from './commands/prepare.js';
import { registerEmbed } from './commands/embed.js';
import { registerBuildBatches } from './commands/build-batches.js';
import { registerMakeTasks } from './commands/make-tasks.js';
import { registerParams } from './commands/params.js';
import { registerTrain } from './commands/train.js';
import { registerRun } from './commands/run.js';
import { registerVerify } from './commands/verify.js';
import { registerEval } from './commands/eval.js';
import { registerInspectExperts } from './commands/inspect-experts.js';
import { registerGenerate } from './commands/generate.js';
import { registerReport } from './commands/report.js';
import { launchFromEnv } from '../parallel/mpi.js';
import { markAllRanks } from '../parallel/world.js';
import { InputError } from '../artifacts/index.js';
import { log, LOG_LEVELS, type LogLevel } from './log.js';

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

export interface GlobalOptions {
  logLevel: LogLevel;
  quiet?: boolean;
  debug?: boolean;
}

export function buildProgram(): Command {
  const program = new Command('lory')
    .description('Pre-train Lory mixture-of-experts language models: experts merged per causal segment, data batched by similarity.')
    .version(packageVersion(), '-V, --version', 'print the lory version')
    .addOption(new Option('--log-level <level>', 'how much to log').choices([...LOG_LEVELS]).default('info'))
    .option('-q, --quiet', 'only print errors (same as --log-level error)')
    .option('--debug', 'print stack traces of internal errors and debug logs')
    .configureHelp({ sortSubcommands: false })
    .addHelpText(
      'after',
      `
Examples:
  $ lory doctor                 check ONNX Runtime, custom-op libraries and GPUs
  $ lory doctor --json          the same, as JSON
  $ lory --log-level debug doctor

Docs: README.md; the method and design: docs/ and DESIGN notes.`,
    )
    .hook('preAction', (command, action) => {
      const opts = command.optsWithGlobals() as GlobalOptions;
      log.level = opts.quiet ? 'error' : opts.debug ? 'debug' : opts.logLevel;
      refuseUnderRanks(action.name());
    });
  registerDoctor(program);
  registerPrepare(program);
  registerEmbed(program);
  registerBuildBatches(program);
  registerParams(program);
  registerTrain(program);
  registerRun(program);
  registerVerify(program);
  registerEval(program);
  registerMakeTasks(program);
  registerInspectExperts(program);
  registerReport(program);
  registerGenerate(program);
  return program;
}

/**
 * The usage conventions, applied to every command in the tree at parse time (so commands registered
 * anywhere, by any file, get them): a usage error — unknown option or command, missing or invalid
 * argument, a bad choice, extra arguments — is one line on stderr and a CommanderError that the CLI
 * maps to exit 2, never commander's own process.exit(1).
 */
export function applyUsageConventions(root: Command): void {
  const visit = (command: Command) => {
    command.exitOverride();
    command.showHelpAfterError(false);
    const path = command.parent ? commandPath(command) : 'lory';
    command.configureOutput({
      outputError: (text, write) => write(`${text.trimEnd().replace(/\s*\n\s*/g, ' ')} (see \`${path} --help\`)\n`),
    });
    for (const sub of command.commands) visit(sub);
  };
  visit(root);
}

function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Commands that divide their work among the ranks of `mpirun -np N` (N > 1); others would run N times over one output. */
const RANKED_COMMANDS = new Set(['train', 'embed', 'params', 'doctor']);

function refuseUnderRanks(command: string): void {
  const launch = launchFromEnv();
  if (!launch || launch.size < 2 || RANKED_COMMANDS.has(command)) return;
  const hint = command === 'run' ? ': run the pipeline in one process and train its runs with `mpirun -np N lory train`' : '';
  throw markAllRanks(new InputError(`lory ${command} runs in one process; under mpirun only train and embed divide their work among the ${launch.size} ranks${hint}`));
}
