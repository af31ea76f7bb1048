// Tejas' JavaScript API: what the UI and the tests call. Everything heavy runs in workers.
// This first part embeds images; projects, training, prediction and exports follow (see README).
import { MESSAGE, callWorker } from './protocol.js';

export const DEFAULT_ARTIFACTS = new URL('artifacts/default/', import.meta.url).href;

let embedWorker = null;

function worker() {
  embedWorker ??= new Worker(new URL('./workers/embed.js', import.meta.url), { type: 'module' });
  return embedWorker;
}

/**
 * Backbone features of image Blobs.
 * @param {Blob[]} images
 * @param {{artifacts?: string, batchSize?: number, threads?: number, provider?: 'auto'|'wasm'|'webgpu',
 *          onProgress?: (p: {done: number, total: number}) => void, signal?: AbortSignal}} options
 * @returns {Promise<{featureSize: number, features: Float32Array, embedded: number[],
 *          failures: {index: number, message: string}[], provider: string, threads: number, seconds: number}>}
 *   features holds one row per input image (rows of failed images stay zero; see failures).
 */
export function embedImages(images, { artifacts = DEFAULT_ARTIFACTS, onProgress, signal, ...options } = {}) {
  return callWorker(worker(), MESSAGE.EMBED, { artifacts, images, ...options }, { onProgress, signal });
}

if (typeof window !== 'undefined') window.tejas = { embedImages, DEFAULT_ARTIFACTS };
