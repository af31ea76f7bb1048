// Tejas' JavaScript API: what the UI and the tests call. Everything heavy runs in workers (workers/pool.js).
// This first part embeds images; projects, training, prediction and exports follow (see README). What only
// text projects use lives in features/text/api.js and is re-exported here.
import { MESSAGE, callWorker } from './protocol.js';
import { callEmbed, callPython, embedCounts, rememberSessionOptions, withSessionOptions, worker } from './workers/pool.js';
import * as projects from './features/dataset/projects.js';
import { validateClassName } from './features/dataset/names.js';
import { requestPersistence, storageStatus } from './db.js';
import { headOf } from './features/artifacts.js';
import * as sync from './features/sync/client.js';
import { modelArtifacts } from './features/jobs/artifacts.js';
import { predictMany as predictManyImages } from './features/predict/many.js';
import { forEachImage } from './features/predict/sources.js';
import { predictionsCsv, predictionsJson } from './features/predict/report.js';
import {
  CORRECTION, KEEP_PREVIOUS_MODELS, TEXT_LEARNING_RATE, currentModel, listModels, loadManifest, modelStatus as engineModelStatus, predictImage,
  trainProject, usableModel,
} from './features/train/engine.js';
import * as texts from './features/dataset/texts.js';
import { DEFAULT_TEXT_ARTIFACTS, createTextApi, keepTextArtifactsOffline } from './features/text/api.js';
import { createBackgroundEmbedding } from './features/embed/background.js';
import * as zipImport from './features/dataset/zip_import.js';
import * as projectFile from './features/dataset/project_file.js';

export {
  addClass, addCorrection, addSamples, deleteClass, deleteProject, deleteSamples, getImage, getProject,
  getThumbnail, listChanges, listClasses, listProjects, listSamples, moveSamples, projectStorage, renameClass,
  renameProject, restoreSamples,
} from './features/dataset/projects.js';
export { validateClassName, requestPersistence, storageStatus, headOf, predictionsCsv, predictionsJson, embedCounts };
export {
  deleteAccount, onSyncStatus, setProjectSync, signIn, signOut, signUp, startSync, syncNow, syncStatus,
} from './features/sync/client.js';

export const DEFAULT_ARTIFACTS = new URL('artifacts/default/', import.meta.url).href;
export {
  DEFAULT_TEXT_ARTIFACTS, MAX_TEXT_CHARACTERS, addTextCorrection, addTexts, editText, getText, keepTextArtifactsOffline, listTexts,
} from './features/text/api.js';

/**
 * The artifacts a project's model work uses when the caller names none: those of its current model —
 * the default set of its kind (images or texts), or (a model trained on the server with a fine-tuned
 * backbone) that job's set, kept offline and downloaded on first use. Rejects with what to do when
 * they cannot be had.
 */
export async function projectArtifacts(projectId, artifacts = undefined) {
  if (artifacts) return artifacts;
  const kind = projects.projectKind(await projects.getProject(projectId));
  return modelArtifacts(await currentModel(projectId), kind === 'text' ? DEFAULT_TEXT_ARTIFACTS : DEFAULT_ARTIFACTS);
}

/** A new project: {kind: 'image' (default) | 'text'}. A text project makes the text model available offline. */
export async function createProject(name, { kind = 'image' } = {}) {
  const project = await projects.createProject(name, { kind });
  if (kind === 'text') keepTextArtifactsOffline();
  return project;
}

/** The artifacts' manifest.json (fetched once per page); rejects with the file and the fix when missing. */
export const manifest = (artifacts = DEFAULT_ARTIFACTS) => loadManifest(artifacts);

/**
 * Backbone features of image Blobs.
 * @param {Blob[]} images
 * @param {{artifacts?: string, batchSize?: number, threads?: number, provider?: 'auto'|'wasm'|'webgpu',
 *          onProgress?: (p: {done: number, total: number}) => void, signal?: AbortSignal}} options
 * @returns {Promise<{featureSize: number, features: Float32Array, embedded: number[],
 *          failures: {index: number, message: string}[], provider: string, threads: number, seconds: number,
 *          inferenceSeconds: number}>}
 *   features holds one row per input image (rows of failed images stay zero; see failures).
 */
export function embedImages(images, options = {}) {
  rememberSessionOptions(options);
  return backgroundEmbedding.foreground(() => embedImagesBy('foreground', images, options), options);
}

function embedImagesBy(by, images, { artifacts = DEFAULT_ARTIFACTS, onProgress, signal, ...options } = {}) {
  return callEmbed(by, MESSAGE.EMBED, { artifacts, images, ...options }, { onProgress, signal });
}

/**
 * Sentence features of texts with the text encoder (manifest.text.encoder of `artifacts`), in a worker:
 * tokenized like Python `tokenizers`, batched by token length (little padding), rows in input order.
 * @param {string[]} texts
 * @param {{artifacts?: string, batchSize?: number, threads?: number, sortByLength?: boolean,
 *          onProgress?: (p: {done: number, total: number}) => void, signal?: AbortSignal}} options
 * @returns {Promise<{featureSize: number, features: Float32Array, seconds: number, inferenceSeconds: number,
 *          threads: number, provider: string, tokens: number, paddedTokens: number}>}
 */
export function embedTexts(textList, { artifacts = DEFAULT_TEXT_ARTIFACTS, onProgress, signal, ...options } = {}) {
  if (!Array.isArray(textList) || textList.some((t) => typeof t !== 'string')) {
    return Promise.reject(new TypeError('embedTexts(texts): texts must be an array of strings'));
  }
  if (artifacts === DEFAULT_TEXT_ARTIFACTS) keepTextArtifactsOffline();
  rememberSessionOptions(options);
  return backgroundEmbedding.foreground(() => embedTextsBy('foreground', textList, { artifacts, onProgress, signal, ...options }), { signal });
}

function embedTextsBy(by, textList, { artifacts, onProgress, signal, ...options }) {
  return callEmbed(by, MESSAGE.EMBED_TEXT, { artifacts, texts: textList, ...options }, { onProgress, signal });
}

/**
 * The page's background embedding (features/embed/background.js): watch(projectId) keeps a project's
 * features computed as its images or texts arrive, ahead of Train; status(projectId) →
 * {total, pending, failed, running, waiting, scanned, error, ready}; subscribe(projectId, listener) →
 * unsubscribe; ready(projectId, {signal}) resolves once nothing is left to embed; pause(), resume(),
 * cancel(). Predictions, training and foreground embed calls go first: background work waits for them.
 */
export const backgroundEmbedding = createBackgroundEmbedding({
  embedImages: (images, options) => embedImagesBy('background', images, withSessionOptions(options)),
  embedTexts: (textList, options) => embedTextsBy('background', textList, withSessionOptions(options)),
  projectArtifacts: (projectId) => projectArtifacts(projectId),
});

/**
 * Train the classification head on embeddings (onnxruntime-web training, in a worker).
 * @param {{train: {features: Float32Array, labels: Int32Array}, validation?: {features, labels},
 *          numClasses: number, epochs?: number, batchSize?: number, learningRate?: number, weightDecay?: number, seed?: number,
 *          threads?: number, initialParameters?: Float32Array, artifacts?: string,
 *          onProgress?: (p: object) => void, signal?: AbortSignal}} options
 *   onProgress gets {step, totalSteps, epoch, loss, etaSeconds} after any step that ends 250 ms or more
 *   after the last report (a last-block step is one onnxruntime call that can itself take seconds), and
 *   after each epoch also {epochDone, trainAccuracy, validationAccuracy, validationLoss}.
 * @returns {Promise<{parameters: Float32Array, layout: object[], history: object[], steps: number, seconds: number}>}
 *   Cancelling (signal) rejects with an AbortError and leaves any earlier model untouched.
 */
export function trainHead({ artifacts = DEFAULT_ARTIFACTS, onProgress, signal, ...options }) {
  // A head step is a few small matrices: a second wasm thread only adds synchronisation (measured:
  // 6.7 ms/step on one thread, 11.4 ms on two, MobileNetV2 head). The last block's convolutions gain
  // from threads. Thread counts are fixed when a worker starts, hence one worker per mode.
  const mode = options.mode ?? 'head';
  const threads = options.threads ?? (mode === 'head' ? 1 : undefined);
  return callWorker(worker('train', mode), MESSAGE.TRAIN_HEAD, { artifacts, ...options, threads }, { onProgress, signal });
}

/**
 * The last block run with a model's tensors: its inputs (from embedImages with model 'backbone_trunk')
 * → features, for models trained in last-block mode.
 * @returns {Promise<Float32Array>} [count, feature_size]
 */
export function runBlock({ artifacts = DEFAULT_ARTIFACTS, inputs, parameters, layout, threads }) {
  return callWorker(worker('embed'), MESSAGE.RUN_BLOCK, { artifacts, inputs, parameters, layout, threads });
}

/**
 * Class probabilities from features with a trained head (a few thousand multiply-adds per image).
 * @returns {Float32Array} [count, numClasses] row-major softmax probabilities
 */
export function headProbabilities(parameters, layout, features, featureSize, numClasses) {
  const { weight, bias } = headOf(layout);
  const count = features.length / featureSize;
  const out = new Float32Array(count * numClasses);
  for (let i = 0; i < count; i++) {
    const f = features.subarray(i * featureSize, (i + 1) * featureSize);
    let max = -Infinity;
    for (let c = 0; c < numClasses; c++) {
      let z = parameters[bias.offset + c];
      const row = weight.offset + c * featureSize;
      for (let j = 0; j < featureSize; j++) z += parameters[row + j] * f[j];
      out[i * numClasses + c] = z;
      max = Math.max(max, z);
    }
    let total = 0;
    for (let c = 0; c < numClasses; c++) total += (out[i * numClasses + c] = Math.exp(out[i * numClasses + c] - max));
    for (let c = 0; c < numClasses; c++) out[i * numClasses + c] /= total;
  }
  return out;
}

/**
 * Train the project's classifier on its stored images (embeddings cached per image and backbone).
 * options: {mode='head' | 'last_block' (also fine-tunes the backbone's last block; needs artifacts
 * exported with --train last-block), epochs=20, batchSize=16, learningRate=3e-3, validationShare=0.2,
 * seed=0, augment=0 (extra augmented views per training image), artifacts, resume: continue from the
 * current model's weights (same classes and mode), onProgress({stage: 'embedding'|'training', ...}),
 * signal}. Resolves with the stored model; a cancelled run rejects with AbortError and the previous
 * model stays current.
 */
export function train(projectId, options = {}) {
  return backgroundEmbedding.foreground(() => trainNow(projectId, options), options);
}

async function trainNow(projectId, { artifacts, ...options } = {}) {
  // a project whose model was trained on the server with its own backbone keeps training its head on that backbone
  artifacts = await projectArtifacts(projectId, artifacts);
  return trainProject(projectId, { artifacts, ...options }, { embedImages, embedTexts, trainHead, headProbabilities, runBlock });
}

async function projectOfKind(projectId, kind, instead) {
  const project = await projects.getProject(projectId);
  if (projects.projectKind(project) !== kind) throw new Error(`"${project.name}" is not ${kind === 'text' ? 'a text' : 'an image'} project; ${instead}.`);
  return project;
}

// Text projects (features/text/api.js) over the services they share with image projects.
const textApi = createTextApi({
  callPython, embedTexts, headProbabilities, projectArtifacts, projectOfKind, createProject,
  foreground: (work, options) => backgroundEmbedding.foreground(work, options),
});
export const {
  addTextCsv, addTextFiles, exportDatasetCsv, exportTokenizer, importTextCsv, predictText, predictTexts, readTextCsv,
} = textApi;

/** Top-k [{classId, name, probability}] for an image Blob with the project's current model. */
export async function predict(projectId, image, { artifacts, topK = 3 } = {}) {
  return backgroundEmbedding.foreground(async () => {
    await projectOfKind(projectId, 'image', 'use predictText() for texts');
    artifacts = await projectArtifacts(projectId, artifacts);
    return predictImage(projectId, image, { artifacts, topK, embedImages, headProbabilities, runBlock });
  });
}

/**
 * Predict many images with the project's current model, a batch at a time, in workers: the same
 * preprocessing, model and head as predict(), so each row's probabilities equal predict()'s for that
 * image (float noise of batched inference aside, ≤ 1e-5). Only two batches of images are read at a
 * time (a zip entry by entry, in the Python worker under the core's archive rules), so thousands of
 * images fit in memory; what is kept is the results (and, when asked, small thumbnails).
 * @param {string} projectId
 * @param {File[]|FileList|File} source image Files, or one zip File (any folder layout; a zip the core
 *   refuses — unsafe paths, a zip bomb, not a zip — rejects with its reason; a bad entry is one error row)
 * @param {{topK?: number, batchSize?: number, thumbnailSize?: number, signal?: AbortSignal, artifacts?: string,
 *   onProgress?: (p: {done: number, total: number, failed: number, seconds: number, imagesPerSecond: number}) => void,
 *   onResult?: (rows: PredictedRow[]) => void}} options
 *   topK=3; batchSize=16 (images per backbone run); thumbnailSize (px, default 0 = none): rows also get
 *   `thumbnail`, a small JPEG Blob; onResult gets each batch's rows as soon as they are done.
 * @returns {Promise<{model: {id, created, mode, backboneId, classes: string[]}, topK: number, total: number,
 *   rows: PredictedRow[], failed: number, seconds: number, imagesPerSecond: number}>}
 *   rows in source order, PredictedRow = {index, file, top: [{classId, name, probability}], error: string|null}
 *   (file: the File's name or folder path, or the zip entry's path; top is empty when error says why the
 *   image could not be read). Cancelling (signal) rejects with an AbortError.
 */
export async function predictMany(projectId, source, { artifacts, ...options } = {}) {
  return backgroundEmbedding.foreground(async () => {
    artifacts = await projectArtifacts(projectId, artifacts);
    return predictManyImages(projectId, source, { artifacts, ...options }, {
      embedImages, headProbabilities, runBlock, callPython,
    });
  }, options);
}

/**
 * Put rows of a predictMany run into class `classId` as corrections (addCorrection: always trained on;
 * an image already in the project is moved there). The images are read again from `source` (the same
 * Files or zip the run read), a few at a time.
 * @returns {Promise<{added: number, moved: number, failed: {file: string, message: string}[]}>}
 */
export async function addPredictionsToClass(projectId, classId, source, rows, { onProgress } = {}) {
  const out = { added: 0, moved: 0, failed: [] };
  await forEachImage(source, rows, callPython, async (files, part) => {
    for (const [i, file] of files.entries()) {
      try {
        if (!file) throw new Error('cannot be read again from its source');
        const { moved } = await projects.addCorrection(projectId, classId, file);
        out[moved ? 'moved' : 'added'] += 1;
      } catch (error) {
        out.failed.push({ file: part[i].file, message: error.message });
      }
    }
    onProgress?.({ done: out.added + out.moved + out.failed.length, total: rows.length });
  });
  return out;
}

/** The current model's validation metrics: accuracy, per class, confusion matrix, sample ids per cell. */
export async function evaluate(projectId) {
  const model = await currentModel(projectId);
  if (!model) throw new Error('This project has no trained model yet; train it first.');
  return { ...model.metrics, classes: model.classes, history: model.history };
}

/**
 * {model, stale, artifactsChanged, artifactsMissing}: the current model, whether the data changed since
 * it was trained, and (a message) when it was trained with other artifacts than these, so it must be
 * retrained — or (artifactsMissing) when its server-made artifacts cannot be downloaded now.
 */
export async function modelStatus(projectId, { artifacts } = {}) {
  try {
    artifacts = await projectArtifacts(projectId, artifacts);
  } catch (error) {
    // a server-trained model whose files this device cannot download now: say why instead of failing
    return { ...(await engineModelStatus(projectId)), artifactsChanged: error.message, artifactsMissing: true };
  }
  return { ...(await engineModelStatus(projectId, { artifacts })), artifactsMissing: false };
}

export { CORRECTION, KEEP_PREVIOUS_MODELS, TEXT_LEARNING_RATE, currentModel, listModels };

/** The whole project — images, classes, every trained model — as one file for another browser. */
export const exportProject = (projectId) => projectFile.exportProject(projectId, { callPython, exportDatasetZip, textApi });

/** A project file (from exportProject) as a new project here, its models included. */
export const importProject = (file) => projectFile.importProject(file, { callPython, importDatasetZip, textApi });

async function modelExport(message, projectId, artifacts) {
  artifacts = await projectArtifacts(projectId, artifacts);
  const model = await usableModel(projectId, artifacts);
  return callPython(message, {
    artifacts, parameters: model.parameters, layout: model.layout, numClasses: model.classes.length,
    classNames: model.classes.map((c) => c.name), mode: model.mode ?? 'head',
  });
}

/** The current model as one ONNX file (backbone + head + softmax; class names in its metadata). */
export async function exportOnnx(projectId, { artifacts } = {}) {
  return new Blob([await modelExport(MESSAGE.EXPORT_ONNX, projectId, artifacts)], { type: 'application/octet-stream' });
}

/** The current model as a PyTorch state_dict for torchvision's <architecture>(num_classes=N). */
export async function exportPytorch(projectId, { artifacts } = {}) {
  return new Blob([await modelExport(MESSAGE.EXPORT_PT, projectId, artifacts)], { type: 'application/octet-stream' });
}

/** The project's images as an ImageFolder zip with a tejas.json sidecar (class order, metadata). */
export async function exportDatasetZip(projectId) {
  await projectOfKind(projectId, 'image', 'export its texts with exportDatasetCsv()');
  const classes = await projects.listClasses(projectId);
  const names = new Map(classes.map((c) => [c.id, c.name]));
  const samples = await projects.listSamples(projectId);
  const items = await Promise.all(samples.map(async (s) => ({
    label: names.get(s.classId), name: s.name,
    bytes: new Uint8Array(await (await projects.getImage(s.contentId)).arrayBuffer()),
    metadata: { source: s.source, added: s.added },
  })));
  const bytes = await callPython(MESSAGE.EXPORT_DATASET, { classes: classes.map((c) => c.name), samples: items });
  return new Blob([bytes], { type: 'application/zip' });
}

/**
 * A new project from an ImageFolder zip (as exported, or any <class>/<image> zip), read a batch at a time
 * (features/dataset/zip_import.js): onProgress({done, total}) after each saved batch.
 * @returns {Promise<{project, added: number, skipped: {name, reason}[], warnings: string[]}>}
 *   A refused archive rejects with the reason; nothing is stored then.
 */
export const importDatasetZip = (file, options = {}) => zipImport.importDatasetZip(file, callPython, options);

/**
 * An ImageFolder zip's images added to an existing project: each folder into the class of that name
 * (made when missing), a batch at a time with onProgress({done, total}).
 * @returns {Promise<{added: number, skipped: {name, reason}[], warnings: string[]}>}
 */
export const addDatasetZip = (projectId, file, options = {}) => zipImport.addDatasetZip(projectId, file, callPython, options);

if (typeof window !== 'undefined') {
  window.tejas = {
    ...projects, embedImages, trainHead, headProbabilities, headOf, runBlock, validateClassName, requestPersistence, storageStatus,
    train, predict, predictMany, addPredictionsToClass, predictionsCsv, predictionsJson, evaluate, currentModel, listModels, modelStatus, KEEP_PREVIOUS_MODELS, exportOnnx, exportPytorch, exportDatasetZip,
    importDatasetZip, addDatasetZip, exportProject, importProject, manifest, ...sync,
    DEFAULT_ARTIFACTS, projectArtifacts, createProject,
    DEFAULT_TEXT_ARTIFACTS, ...texts, embedTexts, predictText, predictTexts, readTextCsv, importTextCsv, addTextCsv,
    addTextFiles, exportDatasetCsv, exportTokenizer, keepTextArtifactsOffline, backgroundEmbedding, embedCounts,
  };
}
