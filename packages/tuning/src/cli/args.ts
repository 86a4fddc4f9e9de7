/** Argument parsers shared by the CLI's subcommands: a bad value is a usage error (exit 2). */
import { InvalidArgumentError } from 'commander';

export function positiveInt(v: string, allowZero = false): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < (allowZero ? 0 : 1)) throw new InvalidArgumentError(`expected a ${allowZero ? 'non-negative' : 'positive'} integer, got '${v}'`);
  return n;
}

export function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got '${v}'`);
  return n;
}

/** A bad flag value or config file found after parsing: printed as `keel: <message>`, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
