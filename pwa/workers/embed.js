// Embed worker: image Blobs → backbone features, with onnxruntime-web (current release; WebGPU only on
// a real GPU adapter, else wasm with SIMD and threads). Decoding and preprocessing happen here too,
// never on the page's thread.
import { MESSAGE, serveRequests } from '../protocol.js';
import { fetchManifest, wasmThreads } from '../features/artifacts.js';
import { augment } from '../features/embed/augment.js';
import { preprocess, rgbaToRgb } from '../features/embed/preprocess.js';

const VENDOR = new URL('../vendor/ort/', import.meta.url);
let loaded = null; // {key, ort, session, manifest, provider}

async function chooseProvider(ort, wanted) {
  if (wanted === 'wasm' || !('gpu' in navigator)) return 'wasm';
  // SwiftShader and other fallback adapters are ~90× slower than wasm (shared/NOTES.md).
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  const fallback = !adapter || adapter.isFallbackAdapter || adapter.info?.isFallbackAdapter;
  return wanted === 'webgpu' || !fallback ? 'webgpu' : 'wasm';
}

async function load(artifacts, { threads, provider: wanted = 'auto' } = {}) {
  const key = JSON.stringify([artifacts, threads, wanted]);
  if (loaded?.key === key) return loaded;
  if (loaded) await loaded.session.release();
  const ort = await import(new URL('ort.all.min.mjs', VENDOR).href);
  ort.env.wasm.wasmPaths = VENDOR.href;
  ort.env.wasm.numThreads = wasmThreads(threads);
  const { base, manifest } = await fetchManifest(artifacts);
  const provider = await chooseProvider(ort, wanted);
  const session = await ort.InferenceSession.create(new URL(manifest.models.backbone.file, base).href, {
    executionProviders: [provider],
    graphOptimizationLevel: 'all',
  });
  loaded = { key, ort, session, manifest, provider };
  return loaded;
}

/** Blob → {rgb, width, height} with the browser's decoder, colours untouched. */
async function decode(blob) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new Error('not a readable image (the browser cannot decode it)');
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const { data } = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const image = { rgb: rgbaToRgb(data), width: bitmap.width, height: bitmap.height };
  bitmap.close();
  return image;
}

const cancelled = new Set();

serveRequests(self, {
  cancel(_payload, _progress, id) {
    cancelled.add(id);
  },

  /**
   * {artifacts, images: Blob[], views?: (number|null)[], batchSize, threads, provider}
   *   → {featureSize, features, failures, ...}; views[i], when a number, embeds an augmented view of
   *   images[i] drawn from that seed instead of the image itself.
   */
  async [MESSAGE.EMBED]({ artifacts, images, views = [], batchSize = 8, threads, provider }, progress, id) {
    const { ort, session, manifest, provider: used } = await load(artifacts, { threads, provider });
    const [h, w] = manifest.input.size;
    const plane = 3 * h * w;
    const featureSize = manifest.feature_size;
    const features = new Float32Array(images.length * featureSize);
    const failures = [];
    const embedded = [];
    const started = performance.now();
    for (let start = 0; start < images.length; start += batchSize) {
      await new Promise((resolve) => setTimeout(resolve, 0));  // let a cancel message in
      if (cancelled.has(id)) throw new DOMException('Cancelled', 'AbortError');
      const batch = [];
      const input = new Float32Array(Math.min(batchSize, images.length - start) * plane);
      for (let i = start; i < Math.min(start + batchSize, images.length); i++) {
        try {
          const decoded = await decode(images[i]);
          const { rgb, width, height } = views[i] == null ? decoded : augment(decoded, views[i]);
          preprocess(rgb, width, height, manifest.input, input, batch.length * plane);
          batch.push(i);
        } catch (error) {
          failures.push({ index: i, message: error.message });
        }
      }
      if (batch.length) {
        const tensor = new ort.Tensor('float32', input.subarray(0, batch.length * plane), [batch.length, 3, h, w]);
        const output = await session.run({ [manifest.input.name]: tensor });
        const data = output[session.outputNames[0]].data;
        batch.forEach((index, row) => features.set(data.subarray(row * featureSize, (row + 1) * featureSize), index * featureSize));
        embedded.push(...batch);
      }
      progress({ done: Math.min(start + batchSize, images.length), total: images.length });
    }
    cancelled.delete(id);
    return {
      featureSize,
      features,
      embedded,
      failures,
      provider: used,
      threads: ort.env.wasm.numThreads,
      seconds: (performance.now() - started) / 1000,
    };
  },
});
