// Batch prediction: many images (Files or a zip) through the project's current model, a batch at a time
// — the backbone in the embed worker, the head as predict() computes it — so results equal predict()'s
// and memory holds two batches of images at most, whatever the count.
import { sha256Hex } from '../dataset/images.js';
import { usableModel } from '../train/engine.js';
import { openImages } from './sources.js';

const abortError = () => new DOMException('Cancelled', 'AbortError');

/** The model facts a report names: which model made these predictions. */
export const modelSummary = (model) => ({
  id: model.id, created: model.created, mode: model.mode ?? 'head', backboneId: model.backboneId,
  classes: model.classes.map((c) => c.name),
});

/** The top-k of one row of probabilities, most likely first (the same order and ties as predict()). */
function topOf(classes, probabilities, topK) {
  return classes
    .map((c, i) => ({ classId: c.id, name: c.name, probability: probabilities[i] }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, topK);
}

/**
 * See tejas.predictMany (the public entry, which supplies `deps`: embedImages, headProbabilities,
 * runBlock, callPython).
 */
export async function predictMany(projectId, source, options, deps) {
  const { artifacts, topK = 3, batchSize = 16, thumbnailSize = 0, signal, onProgress, onResult } = options;
  const { embedImages, headProbabilities, runBlock, callPython } = deps;
  if (!(batchSize >= 1)) throw new RangeError('batchSize must be at least 1');
  const model = await usableModel(projectId, artifacts);
  const lastBlock = model.mode === 'last_block';
  const numClasses = model.classes.length;
  const k = Math.max(1, Math.min(topK, numClasses));
  if (signal?.aborted) throw abortError();
  const images = await openImages(source, callPython, { signal });
  const total = images.total;
  const rows = [];
  const started = performance.now();
  let failed = 0;
  const elapsed = () => (performance.now() - started) / 1000;
  const report = () => onProgress?.({
    done: rows.length, total, failed, seconds: elapsed(), imagesPerSecond: rows.length / Math.max(elapsed(), 1e-3),
  });
  const indicesFrom = (start) => Array.from({ length: Math.min(batchSize, total - start) }, (_, i) => start + i);
  const readFrom = (start) => (start < total ? images.read(indicesFrom(start), signal) : null);
  let next = readFrom(0);
  report();
  try {
    for (let start = 0; start < total; start += batchSize) {
      if (signal?.aborted) throw abortError();
      const batch = await next;
      // read the next batch (a zip's entries, in the Python worker) while this one is embedded
      next = readFrom(start + batchSize);
      next?.catch(() => null); // awaited next round; an abort in between must not go unhandled
      const indices = indicesFrom(start);
      const batchRows = indices.map((index, i) => ({
        index, file: images.names[index], sha256: null, top: [], error: batch[i].error ?? null,
        ...(thumbnailSize ? { thumbnail: null } : {}),
      }));
      const readable = batchRows.filter((row, i) => batch[i].blob);
      if (readable.length) {
        const blobs = batchRows.flatMap((row, i) => (batch[i].blob ? [batch[i].blob] : []));
        // the report names each file's bytes by their sha256 (as the core's does), hashed while they are embedded
        const digests = Promise.all(blobs.map(async (blob) => sha256Hex(await blob.arrayBuffer())));
        digests.catch(() => null); // awaited below; an embedding that throws first must not leave it unhandled
        const result = await embedImages(blobs, {
          artifacts, model: lastBlock ? 'backbone_trunk' : 'backbone', batchSize: blobs.length, thumbnailSize, signal,
        });
        for (const { index, message } of result.failures) readable[index].error = message;
        const embedded = result.embedded;
        if (embedded.length) {
          const width = result.featureSize;
          const gathered = new Float32Array(embedded.length * width);
          embedded.forEach((row, i) => gathered.set(result.features.subarray(row * width, (row + 1) * width), i * width));
          const features = lastBlock
            ? await runBlock({ artifacts, inputs: gathered, parameters: model.parameters, layout: model.layout })
            : gathered;
          const featureSize = features.length / embedded.length;
          const probabilities = headProbabilities(model.parameters, model.layout, features, featureSize, numClasses);
          embedded.forEach((row, i) => {
            readable[row].top = topOf(model.classes, probabilities.subarray(i * numClasses, (i + 1) * numClasses), k);
          });
        }
        if (thumbnailSize) readable.forEach((row, i) => { row.thumbnail = result.thumbnails?.[i] ?? null; });
        (await digests).forEach((digest, i) => { readable[i].sha256 = digest; });
      }
      failed += batchRows.filter((r) => r.error).length;
      rows.push(...batchRows);
      onResult?.(batchRows);
      report();
    }
  } finally {
    await images.close();
  }
  const seconds = elapsed();
  return { model: modelSummary(model), topK: k, total, rows, failed, seconds, imagesPerSecond: total / Math.max(seconds, 1e-3) };
}
