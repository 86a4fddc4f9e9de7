/**
 * @keel/tuning — tuning strategies, the specialization-vs-forgetting evaluation, and the `keel` CLI.
 */
export { formatInfo } from './cli/info.js';
export { runSmoke } from './cli/smoke.js';
