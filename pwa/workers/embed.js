// Embed worker: image Blobs → backbone features (or, for last-block training, the trunk's output), with
// onnxruntime-web (current release; WebGPU only on a real GPU adapter, else wasm with SIMD and threads).
// Decoding and preprocessing happen here too, never on the page's thread. It also runs the last block
// with a trained model's tensors, for predictions of models trained in last-block mode.
import { MESSAGE, serveRequests } from '../protocol.js';
import { fetchManifest, numel, outputSize, parameterViews, wasmThreads } from '../features/artifacts.js';
import { augment } from '../features/embed/augment.js';
import { preprocess, rgbaToRgb } from '../features/embed/preprocess.js';
import { imageSizeProblem } from '../features/rules.js';
import { loadTokenizer } from '../features/text/tokenize.js';

const VENDOR = new URL('../vendor/ort/', import.meta.url);
// Sessions by model name ('backbone', 'backbone_trunk', 'last_block') for each (artifacts, threads, provider,
// session options, fixed batch), the most recently used MAX_SESSION_SETS kept: with a fixed batch, single
// images (predict, webcam) and batches (adding, training) each keep their own warm session.
const sessionSets = new Map();
const MAX_SESSION_SETS = 3;

/**
 * onnxruntime-web session options for image models, measured in Chromium (bench/browser.py's session_options,
 * each setting in one warm page): graphOptimizationLevel 'all' (faster than 'basic') and the memory pattern on.
 * fixedBatch (freeDimensionOverrides {batch: N}: N is batchSize, 1 for a single image or the images of a
 * partial batch, run one by one) measured no faster than a free batch dimension, so it is off. An EMBED
 * request may override any of them ({session: {...}}) to measure them.
 */
const SESSION_DEFAULTS = Object.freeze({ graphOptimizationLevel: 'all', enableMemPattern: true, fixedBatch: false });

async function chooseProvider(ort, wanted) {
  if (wanted === 'wasm' || !('gpu' in navigator)) return 'wasm';
  // SwiftShader and other fallback adapters are ~90× slower than wasm (shared/NOTES.md).
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  const info = adapter?.info ?? {};
  const software = /swiftshader|llvmpipe|software/i.test(`${info.architecture} ${info.vendor} ${info.description}`);
  const fallback = !adapter || adapter.isFallbackAdapter || info.isFallbackAdapter || software;
  return wanted === 'webgpu' || !fallback ? 'webgpu' : 'wasm';
}

/** The session of manifest model `model` ({ort, session, manifest, provider}), created once. */
async function load(artifacts, { threads, provider: wanted = 'auto', model = 'backbone', options = SESSION_DEFAULTS, batchSize = null } = {}) {
  const fixedBatch = options.fixedBatch ? batchSize : null;
  const key = JSON.stringify([artifacts, threads, wanted, options, fixedBatch]);
  let byModel = sessionSets.get(key);
  sessionSets.delete(key);  // re-inserted last: the most recently used
  if (!byModel) {
    byModel = new Map();
    for (const [oldKey, old] of [...sessionSets].slice(0, Math.max(0, sessionSets.size - MAX_SESSION_SETS + 1))) {
      sessionSets.delete(oldKey);
      await Promise.all([...old.values()].map(async (entry) => (await entry.catch(() => null))?.session.release()));
    }
  }
  sessionSets.set(key, byModel);
  if (!byModel.has(model)) {
    const entry = (async () => {
      const ort = await import(new URL('ort.all.min.mjs', VENDOR).href);
      ort.env.wasm.wasmPaths = VENDOR.href;
      ort.env.wasm.numThreads = wasmThreads(threads);
      const { base, manifest } = await fetchManifest(artifacts);
      if (!manifest.models[model]) {
        throw new Error(model === 'encoder'
          ? 'these artifacts have no text encoder; use the text artifacts (tejas export --modality text)'
          : `these artifacts have no ${model} model; re-export with --train last-block`);
      }
      // a text set names the encoder file the app loads (a quantised variant may be the default)
      const file = model === 'encoder' ? manifest.text.encoder : manifest.models[model].file;
      // The last block gets its tensors as inputs, which the WebGPU path would copy on every run.
      const provider = model === 'last_block' ? 'wasm' : await chooseProvider(ort, wanted);
      const url = new URL(file, base).href;
      let source = url;
      let perBatchScales = false;
      if (model === 'encoder') {
        source = await fetchModel(url);
        perBatchScales = containsAscii(source, 'DynamicQuantizeLinear');
      }
      const session = await ort.InferenceSession.create(source, {
        executionProviders: [provider],
        graphOptimizationLevel: options.graphOptimizationLevel,
        enableMemPattern: options.enableMemPattern,
        ...(fixedBatch ? { freeDimensionOverrides: { batch: fixedBatch } } : {}),
      });
      return { ort, session, manifest, provider, perBatchScales, fixedBatch };
    })();
    byModel.set(model, entry);
    entry.catch(() => byModel.delete(model));
  }
  return byModel.get(model);
}

async function fetchModel(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${new URL(url).pathname}: HTTP ${response.status}; is the text model installed?`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Whether `bytes` hold the ASCII string `text` (an operator type in an ONNX file). */
function containsAscii(bytes, text) {
  const pattern = new TextEncoder().encode(text);
  for (let i = bytes.indexOf(pattern[0]); i !== -1 && i <= bytes.length - pattern.length; i = bytes.indexOf(pattern[0], i + 1)) {
    let j = 1;
    while (j < pattern.length && bytes[i + j] === pattern[j]) j++;
    if (j === pattern.length) return true;
  }
  return false;
}

/** A small JPEG of a decoded image, fitting in size × size (for lists of many predictions). */
async function thumbnailOf(bitmap, size) {
  const scale = Math.min(1, size / Math.max(bitmap.width, bitmap.height));
  const canvas = new OffscreenCanvas(Math.max(1, Math.round(bitmap.width * scale)), Math.max(1, Math.round(bitmap.height * scale)));
  const context = canvas.getContext('2d');
  context.fillStyle = '#fff'; // JPEG has no transparency
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas.convertToBlob({ type: 'image/jpeg', quality: 0.8 });
}

/** Blob → {rgb, width, height, thumbnail} with the browser's decoder, colours untouched; thumbnail
 * (a JPEG Blob) only when thumbnailSize is given. */
async function decode(blob, thumbnailSize = 0) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new Error('not a readable image (the browser cannot decode it)');
  }
  const problem = imageSizeProblem(bitmap.width, bitmap.height);  // before a canvas of its size is made
  if (problem) {
    bitmap.close();
    throw new Error(problem);
  }
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const { data } = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const image = { rgb: rgbaToRgb(data), width: bitmap.width, height: bitmap.height };
  image.thumbnail = thumbnailSize ? await thumbnailOf(bitmap, thumbnailSize) : null;
  bitmap.close();
  return image;
}

const cancelled = new Set();

// The tokenizer of a text artifact set, by its URL (loaded once per worker).
const tokenizers = new Map();
function tokenizerOf(base, manifest) {
  const url = new URL(manifest.text.tokenizer, base).href;
  if (!tokenizers.has(url)) {
    tokenizers.set(url, loadTokenizer(url));
    tokenizers.get(url).catch(() => tokenizers.delete(url));
  }
  return tokenizers.get(url);
}

/**
 * Texts' rows in batches of similar token length (longest first, so the first batch fails early if
 * memory is short): padding to a batch's longest text then costs little. Without `sort`, input order.
 */
function batchesOf(lengths, batchSize, sort) {
  const order = lengths.map((_, i) => i);
  if (sort) order.sort((a, b) => lengths[b] - lengths[a] || a - b);
  const batches = [];
  for (let start = 0; start < order.length; start += batchSize) batches.push(order.slice(start, start + batchSize));
  return batches;
}

serveRequests(self, {
  cancel(_payload, _progress, id) {
    cancelled.add(id);
  },

  /**
   * {artifacts, images: Blob[], views?: (number|null)[], batchSize, threads, provider, thumbnailSize}
   *   → {featureSize, features, failures, ...}; views[i], when a number, embeds an augmented view of
   *   images[i] drawn from that seed instead of the image itself. With thumbnailSize (px), also
   *   thumbnails: a small JPEG Blob per image (null for those that failed).
   */
  async [MESSAGE.EMBED]({
    artifacts, images, views = [], batchSize = 8, threads, provider, model = 'backbone', thumbnailSize = 0, session: options = {},
  }, progress, id) {
    const sessionOptions = { ...SESSION_DEFAULTS, ...options };
    const loadFor = (rows) => load(artifacts, { threads, provider, model, batchSize: rows, options: sessionOptions });
    const loaded = await loadFor(images.length === 1 ? 1 : batchSize);
    const { ort, session, manifest, provider: used, fixedBatch } = loaded;
    const [h, w] = manifest.input.size;
    const plane = 3 * h * w;
    const featureSize = outputSize(manifest.models[model]);
    const features = new Float32Array(images.length * featureSize);
    const failures = [];
    const embedded = [];
    const thumbnails = thumbnailSize ? images.map(() => null) : undefined;
    const started = performance.now();
    let inferenceMs = 0;
    for (let start = 0; start < images.length; start += batchSize) {
      await new Promise((resolve) => setTimeout(resolve, 0));  // let a cancel message in
      if (cancelled.has(id)) throw new DOMException('Cancelled', 'AbortError');
      const batch = [];
      // a fixed-batch session takes exactly its rows (a partial batch runs image by image below)
      const input = new Float32Array((fixedBatch ?? Math.min(batchSize, images.length - start)) * plane);
      for (let i = start; i < Math.min(start + batchSize, images.length); i++) {
        try {
          const decoded = await decode(images[i], thumbnailSize);
          if (thumbnails) thumbnails[i] = decoded.thumbnail;
          const { rgb, width, height } = views[i] == null ? decoded : augment(decoded, views[i]);
          preprocess(rgb, width, height, manifest.input, input, batch.length * plane);
          batch.push(i);
        } catch (error) {
          failures.push({ index: i, message: error.message });
        }
      }
      if (batch.length && fixedBatch && batch.length < fixedBatch) {
        // A partial batch (the last one, or a few images added at a time): one image per run on the
        // single-image session, instead of computing the padding rows of the fixed batch.
        const single = await loadFor(1);
        const before = performance.now();
        for (const [row, index] of batch.entries()) {
          const tensor = new ort.Tensor('float32', input.subarray(row * plane, (row + 1) * plane), [1, 3, h, w]);
          const output = await single.session.run({ [manifest.input.name]: tensor });
          features.set(output[single.session.outputNames[0]].data.subarray(0, featureSize), index * featureSize);
        }
        inferenceMs += performance.now() - before;
        embedded.push(...batch);
      } else if (batch.length) {
        const rows = fixedBatch ?? batch.length;
        const tensor = new ort.Tensor('float32', input.subarray(0, rows * plane), [rows, 3, h, w]);
        const before = performance.now();
        const output = await session.run({ [manifest.input.name]: tensor });
        inferenceMs += performance.now() - before;
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
      thumbnails,
      provider: used,
      threads: ort.env.wasm.numThreads,
      session: { ...SESSION_DEFAULTS, ...options },
      seconds: (performance.now() - started) / 1000,
      inferenceSeconds: inferenceMs / 1000,  // of which the backbone itself (the rest: decode, resize, normalise)
    };
  },

  /**
   * {artifacts, texts: string[], batchSize, threads, provider, sortByLength = true} → {featureSize,
   *   features [texts.length × featureSize] in input order, seconds, inferenceSeconds, threads, provider,
   *   batchSize, tokens, paddedTokens}: the text encoder (manifest.text.encoder) on the tokenizer's ids.
   * batchSize defaults to 32, and to 1 for an encoder quantised dynamically (DynamicQuantizeLinear): its
   * activation scales are computed over the whole batch, padding included, so a text's features would
   * depend on the texts it shares a batch with (cosine ~0.98 between batch 8 and alone, measured), and
   * cached embeddings must be a function of the text alone. Batch 1 costs ~10–25 % there (measured).
   */
  async [MESSAGE.EMBED_TEXT]({ artifacts, texts, batchSize, threads, provider, sortByLength = true }, progress, id) {
    const started = performance.now();
    const { ort, session, manifest, provider: used, perBatchScales } = await load(artifacts, { threads, provider, model: 'encoder' });
    batchSize ??= perBatchScales ? 1 : 32;
    const { base } = await fetchManifest(artifacts);
    const tokenizer = await tokenizerOf(base, manifest);
    const maxLength = manifest.text.max_length ?? tokenizer.maxLength;
    const padId = BigInt(manifest.text.pad_id ?? tokenizer.padId);
    const encoded = texts.map((text, i) => {
      try {
        return tokenizer.encodeOne(text, maxLength).ids;
      } catch (error) {
        throw new TypeError(`text ${i}: ${error.message}`);
      }
    });
    const featureSize = outputSize(manifest.models.encoder);
    const features = new Float32Array(texts.length * featureSize);
    const wants = new Set(session.inputNames);
    let inferenceMs = 0;
    let done = 0;
    let paddedTokens = 0;
    for (const rows of batchesOf(encoded.map((ids) => ids.length), batchSize, sortByLength)) {
      await new Promise((resolve) => setTimeout(resolve, 0));  // let a cancel message in
      if (cancelled.has(id)) {
        cancelled.delete(id);
        throw new DOMException('Cancelled', 'AbortError');
      }
      const longest = Math.max(...rows.map((r) => encoded[r].length));
      const size = rows.length * longest;
      const ids = new BigInt64Array(size).fill(padId);
      const mask = new BigInt64Array(size);
      rows.forEach((r, k) => encoded[r].forEach((token, j) => {
        ids[k * longest + j] = BigInt(token);
        mask[k * longest + j] = 1n;
      }));
      paddedTokens += size;
      const dims = [rows.length, longest];
      const feeds = { input_ids: new ort.Tensor('int64', ids, dims), attention_mask: new ort.Tensor('int64', mask, dims) };
      if (wants.has('token_type_ids')) feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(size), dims);
      const before = performance.now();
      const output = await session.run(feeds);
      inferenceMs += performance.now() - before;
      const data = output[session.outputNames[0]].data;
      rows.forEach((r, k) => features.set(data.subarray(k * featureSize, (k + 1) * featureSize), r * featureSize));
      done += rows.length;
      progress({ done, total: texts.length });
    }
    cancelled.delete(id);
    return {
      featureSize,
      features,
      provider: used,
      threads: ort.env.wasm.numThreads,
      seconds: (performance.now() - started) / 1000,
      inferenceSeconds: inferenceMs / 1000,
      batchSize,
      tokens: encoded.reduce((n, ids) => n + ids.length, 0),
      paddedTokens,
    };
  },

  /**
   * {artifacts, inputs: Float32Array [n × block input], parameters: Float32Array, layout, threads}
   *   → Float32Array [n × feature_size]: the last block run with a trained model's tensors.
   */
  async [MESSAGE.RUN_BLOCK]({ artifacts, inputs, parameters, layout, threads, batchSize = 32 }) {
    const { ort, manifest, session } = await load(artifacts, { threads, model: 'last_block' });
    const dims = manifest.models.last_block.inputs[0].shape.slice(1);
    const size = numel(dims);
    const tensors = Object.fromEntries(parameterViews(parameters, layout, manifest.models.last_block.parameters)
      .map(([name, values, shape]) => [name, new ort.Tensor('float32', values, shape)]));
    const n = inputs.length / size;
    const f = manifest.feature_size;
    const features = new Float32Array(n * f);
    for (let start = 0; start < n; start += batchSize) {
      const rows = Math.min(batchSize, n - start);
      const x = new ort.Tensor('float32', inputs.subarray(start * size, (start + rows) * size), [rows, ...dims]);
      const output = await session.run({ [manifest.models.last_block.inputs[0].name]: x, ...tensors });
      features.set(output[session.outputNames[0]].data, start * f);
    }
    return features;
  },
});
