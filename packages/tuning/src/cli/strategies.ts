/** `keel strategies`: every registered tuning method with its paradigm and a one-line description. */
import { type Command } from 'commander';
import { registerBuiltinStrategies } from '../strategies/builtin.js';
import { listStrategies } from '../strategies/registry.js';

export function formatStrategies(): string {
  registerBuiltinStrategies();
  const rows = listStrategies().map((s) => [s.name, s.paradigm, s.description] as const);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map(([n, p, d]) => `${n.padEnd(w0)}  ${p.padEnd(w1)}  ${d}`).join('\n');
}

export function registerStrategiesCommand(program: Command): void {
  program
    .command('strategies')
    .description('list every registered tuning method')
    .option('--json', 'print as JSON')
    .action((f: { json?: boolean }) => {
      registerBuiltinStrategies();
      if (f.json) console.log(JSON.stringify(listStrategies().map((s) => ({ name: s.name, paradigm: s.paradigm, description: s.description, mergeable: s.mergeable }))));
      else console.log(formatStrategies());
    });
}
