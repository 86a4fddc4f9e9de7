/**
 * Loads TF.js 4.22 with its WebGPU backend on keel's own GPU object (same Dawn instance, same adapter),
 * so peer numbers are taken on the same device in the same process.
 */
import { getGpu } from '@keel/kernels';

export type Tf = typeof import('@tensorflow/tfjs-core');

export async function loadPeer(): Promise<Tf> {
  const gpu = await getGpu();
  const g = globalThis as { navigator?: { gpu?: GPU } };
  if (!g.navigator?.gpu) Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  const tf = await import('@tensorflow/tfjs-core');
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('TF.js: the webgpu backend failed to initialize');
  await tf.ready();
  return tf;
}

/** Waits until every op TF.js has recorded so far has finished on the GPU. */
export async function tfSync(tf: Tf): Promise<void> {
  const backend = tf.backend() as unknown as {
    endComputePassEncoder(): void;
    ensureCommandEncoderReady(): void;
    submitQueue(): void;
    device: GPUDevice;
  };
  // TF.js keeps a compute pass open between ops; it must end before the encoder is submitted.
  backend.endComputePassEncoder();
  backend.ensureCommandEncoderReady();
  // Dawn only prints validation errors; a failed peer submit would time as "fast". Make it throw.
  backend.device.pushErrorScope('validation');
  backend.submitQueue();
  const err = await backend.device.popErrorScope();
  if (err) throw new Error(`TF.js peer: GPU validation error: ${err.message}`);
  await backend.device.queue.onSubmittedWorkDone();
}
