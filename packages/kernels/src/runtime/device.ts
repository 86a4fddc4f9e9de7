/**
 * Acquiring a device: an adapter from the platform's GPU, then a device with the adapter's real
 * limits (the WebGPU defaults are far lower) and the optional features keel can use.
 */
import { NoAdapterError } from './errors.js';
import { getGpu } from './gpu.js';

/** Optional features keel uses when the adapter has them. */
export const WANTED_FEATURES = ['shader-f16', 'subgroups', 'timestamp-query'] as const;
export type KeelFeature = (typeof WANTED_FEATURES)[number];

/** Limits keel asks for at the adapter's maximum (the defaults are far lower). */
const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
  'maxBindGroups',
  'maxTextureDimension2D',
  'maxTextureArrayLayers',
] as const;

export interface DeviceInfo {
  adapter: { vendor: string; architecture: string; device: string; description: string };
  features: string[];
  limits: Record<string, number>;
}

export interface DeviceRequest {
  powerPreference?: GPUPowerPreference;
  /** Use this GPU object instead of the platform's (tests, custom Dawn instances). */
  gpu?: GPU;
}

export async function requestDevice(options: DeviceRequest): Promise<{ device: GPUDevice; adapterInfo: GPUAdapterInfo; wgslFeatures: string[] }> {
  const gpu = options.gpu ?? (await getGpu());
  const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : undefined);
  if (!adapter) {
    throw new NoAdapterError(
      'No WebGPU adapter found. On a GPU-less Linux, run scripts/setup-headless-gpu.sh (installs Mesa lavapipe).',
    );
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const requiredLimits: Record<string, number> = {};
  for (const key of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number | undefined>)[key];
    if (typeof v === 'number') requiredLimits[key] = v;
  }
  const device = await adapter.requestDevice({ requiredFeatures, requiredLimits, label: 'keel' });
  // WGSL language extensions (e.g. readonly_and_readwrite_storage_textures); older implementations lack the set.
  const wgslFeatures = [...((gpu as { wgslLanguageFeatures?: Iterable<string> }).wgslLanguageFeatures ?? [])].map(String).sort();
  return { device, adapterInfo: adapter.info, wgslFeatures };
}

/** The adapter, granted features and every numeric limit of a device. */
export function describeDevice(device: GPUDevice, adapterInfo: GPUAdapterInfo): DeviceInfo {
  const limits: Record<string, number> = {};
  for (const key of Object.getOwnPropertyNames(Object.getPrototypeOf(device.limits))) {
    const v = (device.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') limits[key] = v;
  }
  return {
    adapter: {
      vendor: adapterInfo.vendor ?? '',
      architecture: adapterInfo.architecture ?? '',
      device: adapterInfo.device ?? '',
      description: adapterInfo.description ?? '',
    },
    features: [...device.features].map(String).sort(),
    limits,
  };
}
