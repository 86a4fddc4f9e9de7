#!/usr/bin/env node
/**
 * The `keel` command line. Each subcommand lives in its own file and is registered here explicitly.
 */
import { Command, CommanderError } from 'commander';
import { UsageError } from './args.js';
import { registerInfo } from './info.js';
import { registerPretrain } from './pretrain.js';
import { registerSmoke } from './smoke.js';
import { registerStrategiesCommand } from './strategies.js';
import { registerTune } from './tune.js';
import { registerEvalGenerate } from './eval-generate.js';
import { registerBench } from './bench.js';

export function buildProgram(): Command {
  const program = new Command('keel')
    .description('Fine-tune vision-language models without forgetting, on WebGPU.')
    .showHelpAfterError()
    .exitOverride();
  registerInfo(program);
  registerSmoke(program);
  registerPretrain(program);
  registerStrategiesCommand(program);
  registerTune(program);
  registerEvalGenerate(program);
  registerBench(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; usage errors (unknown flag, missing argument) exit 2
      return e.exitCode === 0 ? 0 : 2;
    }
    console.error(`keel: ${e instanceof Error ? e.message : String(e)}`);
    return e instanceof UsageError ? 2 : 1;
  }
}

const isEntry = import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/keel');
if (isEntry) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
