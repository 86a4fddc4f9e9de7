/**
 * Bundles the page: src/main.ts → <outdir>/main.js (one ES module, esbuild, platform 'browser',
 * keel's packages taken from their sources through the 'source' export condition) plus index.html.
 * The model and MNIST files are not copied: serve.ts serves them beside the page.
 *
 * Node-only code in the packages sits behind dynamic imports of `*.node.js` files (mllm's
 * io/files.node.ts and data/mnist-files.node.ts, tuning's strategies/adapter-files.node.ts), reached
 * only when `process.versions.node` is set. A browser bundle cannot resolve their `node:` imports, so
 * the `nodeOnly` plugin below replaces each such file with a module that throws when imported, naming
 * the file and the browser-side API to use instead. `commander` (the CLI's, reached through
 * @keel/tuning's index → cli/smoke.ts → cli/args.ts) is left external: with the packages'
 * `sideEffects: false` the unused CLI code is dropped, and `checkNoExternals` fails the build if any
 * external import (node:*, commander) is still in the output, printing the chain that reaches it.
 *
 * Usage: `pnpm --filter @keel/example-web build` (or `tsx build.ts [outdir]`; default dist/).
 * Non-goals: minification, a dev server with reload, copying data into dist/.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';

export const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');

/** Browser-side replacements for the Node-only modules, named in the thrown message. */
const BROWSER_INSTEAD: Record<string, string> = {
  'files.node': 'parseModelFiles / loadModelFromBytes on fetched bytes',
  'mnist-files.node': "the JSON import of 'mnist/src/digits/<d>.json' (an import map) or a MnistSource",
  'adapter-files.node': 'handle.toFiles() / handle.loadFiles(files)',
};

const nodeOnly: Plugin = {
  name: 'keel-node-only',
  setup(b) {
    b.onResolve({ filter: /\.node\.js$/ }, (args) => ({
      path: resolve(args.resolveDir, args.path),
      namespace: 'keel-node-only',
    }));
    b.onLoad({ filter: /.*/, namespace: 'keel-node-only' }, (args) => {
      const file = relative(REPO, args.path).replace(/\.js$/, '.ts');
      const stem = file.replace(/^.*\//, '').replace(/\.ts$/, '');
      const instead = BROWSER_INSTEAD[stem] ?? 'the in-memory API of the same package';
      const message = `${file} is Node-only (file system) and is not in the browser bundle; use ${instead}`;
      return { contents: `throw new Error(${JSON.stringify(message)});`, loader: 'js' };
    });
  },
};

/** The import chain from an entry point to `target` in `meta` (input paths), or [] if none. */
function chainTo(meta: Metafile, target: string): string[] {
  const parent = new Map<string, string>();
  const entries = Object.keys(meta.inputs).filter((p) => !Object.values(meta.inputs).some((i) => i.imports.some((x) => x.path === p)));
  const queue = [...entries];
  const seen = new Set(queue);
  while (queue.length) {
    const at = queue.shift()!;
    for (const imp of meta.inputs[at]?.imports ?? []) {
      if (seen.has(imp.path)) continue;
      seen.add(imp.path);
      parent.set(imp.path, at);
      if (imp.path === target) {
        const chain = [target];
        for (let p = parent.get(target); p !== undefined; p = parent.get(p)) chain.unshift(p);
        return chain;
      }
      queue.push(imp.path);
    }
  }
  return [];
}

/** Throws if an output still imports something external (a Node built-in or the CLI's commander). */
function checkNoExternals(meta: Metafile): void {
  const bad: string[] = [];
  for (const [out, o] of Object.entries(meta.outputs)) {
    for (const imp of o.imports) {
      if (!imp.external) continue;
      bad.push(`${out} imports '${imp.path}' (reached by ${chainTo(meta, imp.path).join(' → ') || 'an unknown chain'})`);
    }
  }
  if (bad.length) throw new Error(`buildPage: the bundle is not browser-safe:\n  ${bad.join('\n  ')}`);
}

export interface BuildResult {
  outdir: string;
  /** Bytes of main.js. */
  bytes: number;
}

/** Builds the page into `outdir` (created if needed). */
export async function buildPage(outdir = join(HERE, 'dist')): Promise<BuildResult> {
  await mkdir(outdir, { recursive: true });
  const result = await build({
    absWorkingDir: REPO,
    entryPoints: [join(HERE, 'src/main.ts')],
    outfile: join(outdir, 'main.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    // WebGPU browsers. All of these keep mnist.ts's `import(specifier, { with: { type: 'json' } })`;
    // a target without import attributes (e.g. firefox128, or 'es2025') makes esbuild drop the
    // attribute silently, and the browser then refuses the JSON file as a script
    target: ['chrome123', 'firefox141', 'safari18'],
    conditions: ['source'],
    external: ['node:*', 'commander'],
    plugins: [nodeOnly],
    sourcemap: true,
    metafile: true,
    logLevel: 'silent',
  });
  for (const w of result.warnings) console.warn(`buildPage: ${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ''}`);
  checkNoExternals(result.metafile);
  await copyFile(join(HERE, 'index.html'), join(outdir, 'index.html'));
  const main = Object.entries(result.metafile.outputs).find(([p]) => p.endsWith('main.js'));
  return { outdir, bytes: main?.[1].bytes ?? 0 };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? join(HERE, 'dist'));
  const r = await buildPage(out);
  console.log(`built ${relative(process.cwd(), r.outdir) || '.'}/main.js (${(r.bytes / 1024).toFixed(0)} KiB); serve it with: tsx serve.ts`);
}
