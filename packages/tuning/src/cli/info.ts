/** `keel info`: the WebGPU adapter, the features keel was granted, and the device limits. */
import { getRuntime, type DeviceInfo } from '@keel/kernels';
import type { Command } from 'commander';

export function formatInfo(info: DeviceInfo): string {
  const a = info.adapter;
  const pad = (k: string) => `  ${k.padEnd(36)}`;
  return [
    'adapter',
    `${pad('vendor')}${a.vendor}`,
    `${pad('architecture')}${a.architecture}`,
    `${pad('device')}${a.device}`,
    `${pad('description')}${a.description}`,
    `features (${info.features.length})`,
    ...info.features.map((f) => `  ${f}`),
    'limits',
    ...Object.entries(info.limits).map(([k, v]) => `${pad(k)}${v}`),
  ].join('\n');
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('print the WebGPU adapter, features and limits')
    .option('--json', 'print as JSON: { adapter, features, limits }')
    .action(async (opts: { json?: boolean }) => {
      const rt = await getRuntime();
      console.log(opts.json ? JSON.stringify(rt.info, null, 2) : formatInfo(rt.info));
      rt.destroy();
    });
}
