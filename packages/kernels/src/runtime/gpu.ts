/**
 * Finding a WebGPU implementation: `navigator.gpu` in browsers (and anywhere a host put it there),
 * Dawn through the `webgpu` npm package in Node. The Node import is dynamic and its specifier is
 * not a literal, so browser bundles never pull Dawn in.
 */
import { NoAdapterError } from './errors.js';

let nodeGpu: Promise<GPU> | undefined;

async function loadDawn(): Promise<GPU> {
  const specifier = 'webgpu';
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    mod = (await import(/* @vite-ignore */ specifier)) as typeof mod;
  } catch (e) {
    throw new NoAdapterError(
      `WebGPU is not available: no navigator.gpu and the 'webgpu' (Dawn) package failed to load: ${String(e)}`,
    );
  }
  // Dawn's GPUBufferUsage, GPUMapMode, ... constants, as browsers define them globally.
  for (const [k, v] of Object.entries(mod.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  return mod.create([]);
}

/** The platform's `GPU` object. */
export function getGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return Promise.resolve(nav.gpu);
  const isNode = typeof process !== 'undefined' && !!process.versions?.node;
  if (!isNode) return Promise.reject(new NoAdapterError('WebGPU is not available in this browser (no navigator.gpu).'));
  nodeGpu ??= loadDawn();
  return nodeGpu;
}
