// Exits 0 and prints the adapter when WebGPU (Dawn via the `webgpu` package) finds one; 1 otherwise.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(fileURLToPath(new URL('../packages/kernels/package.json', import.meta.url)));
const { create, globals } = await import(require.resolve('webgpu'));
Object.assign(globalThis, globals);
const adapter = await create([]).requestAdapter();
if (!adapter) {
  console.error('probe-adapter: no WebGPU adapter');
  process.exit(1);
}
const { vendor, architecture, device, description } = adapter.info;
console.log(JSON.stringify({ vendor, architecture, device, description }));
process.exit(0);
