// A project's training, prediction and evaluation: embeddings cached per (image, backbone), the head
// trained in the train worker, the model stored only when training finished (a cancelled or failed
// run leaves the previous model in place).
import { changeWriter, get, getAllFromIndex, put, transaction } from '../../db.js';
import { CORRECTION, getImage, getProject, listClasses, listSamples, projectKind } from '../dataset/projects.js';
import { getTexts } from '../dataset/texts.js';
import { classificationReport } from './metrics.js';
import { stratifiedSplit } from './split.js';
import { AUGMENTATION_VERSION } from '../embed/augment.js';
import { sha256Hex } from '../dataset/images.js';
import { backboneId, outputSize } from '../artifacts.js';
import { modesFor } from '../catalog.js';
import { ArtifactsChangedError, artifactsMismatch, artifactsRecord, loadArtifactSet, loadManifest } from './artifact_set.js';

const NO_AUGMENTATION = 'none';
export { ArtifactsChangedError, CORRECTION, loadArtifactSet, loadManifest };

/** Models kept per project besides the current one (older ones are deleted when a new one is stored). */
export const KEEP_PREVIOUS_MODELS = 3;

/** What a model was trained on (classes in order, each image's class) as one hash: a model is stale
 * when its project's digest differs. */
export async function datasetDigest(classes, samples) {
  const names = new Map(classes.map((c) => [c.id, c.name]));
  const lines = samples.map((s) => `${s.contentId}\t${names.get(s.classId)}`).sort();
  return sha256Hex(new TextEncoder().encode([classes.map((c) => c.name).join('\t'), ...lines].join('\n')));
}

/**
 * {model, stale, artifactsChanged}: the current model (null if none), whether the data changed since
 * it was trained, and why it cannot be used with these artifacts (null when it can).
 */
export async function modelStatus(projectId, { artifacts } = {}) {
  const model = await currentModel(projectId);
  if (!model) return { model: null, stale: false, artifactsChanged: null };
  const digest = await datasetDigest(await listClasses(projectId), await listSamples(projectId));
  const set = artifacts ? await loadArtifactSet(artifacts).catch(() => null) : null;
  return {
    model,
    stale: model.datasetDigest !== undefined && model.datasetDigest !== digest,
    artifactsChanged: set ? artifactsMismatch(model, set) : null,
  };
}

/** The project's current model, checked against the artifacts in use (throws when it has none or they differ). */
export async function usableModel(projectId, artifacts) {
  const model = await currentModel(projectId);
  if (!model) throw new Error('This project has no trained model yet; train it first.');
  const why = artifactsMismatch(model, await loadArtifactSet(artifacts));
  if (why) throw new ArtifactsChangedError(why);
  return model;
}


/** What the cache stores for a manifest model: 'backbone' (or a text set's 'encoder') features, or
 * 'backbone_trunk' outputs (last-block inputs). */
const cacheId = (manifest, model) => (model === 'backbone' || model === 'encoder'
  ? backboneId(manifest) : `${model}:${manifest.files[manifest.models[model].file].sha256.slice(0, 16)}`);

const TEXT_HEAD_ONLY = 'Text projects train the classifier only: the text encoder stays as it is (choose "classifier", mode head).';

/** Which embedding a training mode needs (for each mode the catalog lets the app train images in). */
const MODEL_OF_MODE = { head: 'backbone', last_block: 'backbone_trunk' };
const IMAGE_MODES = modesFor('app', 'image');
const TEXT_MODES = modesFor('app', 'text');

function modelOfMode(manifest, mode) {
  if (!IMAGE_MODES.includes(mode)) throw new Error(`unknown training mode "${mode}" (${IMAGE_MODES.join(' or ')})`);
  if (manifest.modality === 'text') {
    if (!TEXT_MODES.includes(mode)) throw new Error(TEXT_HEAD_ONLY);
    return 'encoder';
  }
  if (!manifest.training[mode] || !manifest.models[MODEL_OF_MODE[mode]]) {
    throw new Error('These artifacts cannot train the last block; re-export them with `tejas export --train last-block`.');
  }
  return MODEL_OF_MODE[mode];
}

/** The cache key and generator seed of augmented view `view` (1..K) of an image, for a training seed. */
async function viewOf(contentId, seed, view) {
  const id = `${AUGMENTATION_VERSION}:${seed}:${view}`;
  return { id, seed: parseInt((await sha256Hex(new TextEncoder().encode(`${id}:${contentId}`))).slice(0, 8), 16) };
}

/**
 * Features for `samples` (cached ones from IndexedDB, the rest embedded now and cached). With
 * `view` = {seed, view}, the features of that augmented view of each sample. `model` 'backbone_trunk'
 * gives the last block's inputs instead.
 */
export async function ensureEmbeddings(samples, {
  artifacts, embedImages, embedTexts, onProgress, signal, view = null, model = 'backbone',
}) {
  const manifest = await loadManifest(artifacts);
  const backbone = cacheId(manifest, model);
  const views = view ? await Promise.all(samples.map((s) => viewOf(s.contentId, view.seed, view.view))) : null;
  const augmentationOf = (i) => (views ? views[i].id : NO_AUGMENTATION);
  const cached = await transaction(['embeddings'], 'readonly', async ({ embeddings }) =>
    Promise.all(samples.map((s, i) => get(embeddings, [s.contentId, backbone, augmentationOf(i)]))));
  const missingRows = samples.map((_, i) => i).filter((i) => !cached[i]);
  const missing = missingRows.map((i) => samples[i]);
  const byContent = new Map(cached.filter(Boolean).map((e) => [e.contentId, e.features]));
  if (missing.length && model === 'encoder') {
    // text: read the texts and run the text encoder (no augmented views, no per-item failures)
    const result = await embedTexts(await getTexts(missing.map((s) => s.contentId)), {
      artifacts, signal, onProgress: (p) => onProgress?.({ stage: 'embedding', ...p }),
    });
    await storeEmbeddings(missing.map((s, i) => ({
      contentId: s.contentId, backboneId: backbone, augmentationId: NO_AUGMENTATION,
      features: result.features.slice(i * result.featureSize, (i + 1) * result.featureSize),
    })), byContent);
  } else if (missing.length) {
    const blobs = await Promise.all(missing.map((s) => getImage(s.contentId)));
    const seeds = views ? missingRows.map((i) => views[i].seed) : [];
    const result = await embedImages(blobs, {
      artifacts, signal, views: seeds, model, onProgress: (p) => onProgress?.({ stage: 'embedding', ...p }),
    });
    if (result.failures.length) {
      const first = result.failures[0];
      throw new Error(`${missing[first.index].name}: ${first.message}`);
    }
    const f = result.featureSize;
    const rows = missing.map((s, i) => ({
      contentId: s.contentId, backboneId: backbone, augmentationId: augmentationOf(missingRows[i]),
      features: result.features.slice(i * f, (i + 1) * f),
    }));
    await storeEmbeddings(rows, byContent);
  }
  const featureSize = outputSize(manifest.models[model]);
  const out = new Float32Array(samples.length * featureSize);
  samples.forEach((s, i) => out.set(byContent.get(s.contentId), i * featureSize));
  return out;
}

async function storeEmbeddings(rows, byContent) {
  await transaction(['embeddings'], 'readwrite', async ({ embeddings }) => {
    for (const row of rows) await put(embeddings, row);
  }, `${rows.length} embeddings`);
  rows.forEach((r) => byContent.set(r.contentId, r.features));
}

/** The training set plus `count` augmented views of each training image (validation stays unaugmented). */
async function withAugmentedViews(train, trainSamples, count, { seed, ...embedding }) {
  const features = [train.features];
  const labels = [train.labels];
  for (let view = 1; view <= count; view++) {
    features.push(await ensureEmbeddings(trainSamples, { ...embedding, view: { seed, view } }));
    labels.push(train.labels);
  }
  const all = new Float32Array(features.reduce((n, f) => n + f.length, 0));
  features.reduce((offset, f) => (all.set(f, offset), offset + f.length), 0);
  const allLabels = new Int32Array(labels.reduce((n, l) => n + l.length, 0));
  labels.reduce((offset, l) => (allLabels.set(l, offset), offset + l.length), 0);
  return { features: all, labels: allLabels };
}

function gather(features, featureSize, indices) {
  const out = new Float32Array(indices.length * featureSize);
  indices.forEach((row, i) => out.set(features.subarray(row * featureSize, (row + 1) * featureSize), i * featureSize));
  return out;
}

/** Why a project of kind `kind` cannot use these artifacts, or null. */
export function modalityMismatch(kind, manifest) {
  const modality = manifest.modality ?? 'image';
  if (modality === kind) return null;
  return `This ${kind} project cannot use ${modality} model files (${manifest.architecture}); it needs ${kind} artifacts.`;
}

/**
 * The fixed split `split` = {train, validation} (content ids) checked against the project's samples:
 * unknown or doubly listed ids are refused; samples in neither list are left out of this run.
 */
function fixedSplit(split, ids) {
  const known = new Set(ids);
  const train = [...(split.train ?? [])];
  const validation = [...(split.validation ?? [])];
  const unknown = [...train, ...validation].filter((id) => !known.has(id));
  if (unknown.length) throw new Error(`options.split names ${unknown.length} sample(s) not in this project (e.g. ${unknown[0]}).`);
  const inTrain = new Set(train);
  const both = validation.filter((id) => inTrain.has(id));
  if (both.length || inTrain.size !== train.length || new Set(validation).size !== validation.length) {
    throw new Error(`options.split lists a sample twice (e.g. ${both[0] ?? 'within one list'}); a sample trains or validates, not both.`);
  }
  if (!train.length) throw new Error('options.split has no training samples.');
  return { train, validation };
}

/**
 * Train the project's classifier. options: {mode: 'head'|'last_block', epochs, batchSize, learningRate,
 * validationShare, seed, split: {train, validation} (content ids: this fixed split instead of drawing
 * one), augment, resume, artifacts, onProgress, signal}. Resolves with the stored model record.
 */
/** The head's default learning rate for text projects (the Train screen offers the same). */
export const TEXT_LEARNING_RATE = 0.01;

export async function trainProject(projectId, options, { embedImages, embedTexts, trainHead, headProbabilities, runBlock }) {
  const {
    artifacts, mode = 'head', validationShare = 0.2, seed = 0, resume = false, augment = 0, split: chosenSplit,
    onProgress, signal, ...trainOptions
  } = options;
  const kind = projectKind(await getProject(projectId));
  if (kind === 'text' && !TEXT_MODES.includes(mode)) throw new Error(TEXT_HEAD_ONLY);
  // A sentence encoder's features are unit vectors: the image default (3e-3) leaves a small text project's
  // head short of converging in 20 epochs (200 SMS: macro-F1 0.874 against 0.90 converged), 1e-2 gets there.
  if (kind === 'text') trainOptions.learningRate ??= TEXT_LEARNING_RATE;
  const classes = await listClasses(projectId);
  if (classes.length < 2) throw new Error('Training needs at least 2 classes.');
  const samples = await listSamples(projectId);
  const index = new Map(classes.map((c, i) => [c.id, i]));
  const noun = (n) => `${kind === 'text' ? 'text' : 'image'}${n === 1 ? '' : 's'}`;
  for (const c of classes) {
    const count = samples.filter((s) => s.classId === c.id).length;
    if (count < 2) throw new Error(`Class "${c.name}" has ${count} ${noun(count)}; add at least 2 to train.`);
  }
  const artifactSet = await loadArtifactSet(artifacts);
  const { manifest } = artifactSet;
  const wrongKind = modalityMismatch(kind, manifest);
  if (wrongKind) throw new Error(wrongKind);
  if (kind === 'text' && augment > 0) throw new Error('Augmentation is for images; train a text project with augment 0.');
  const model = modelOfMode(manifest, mode);
  const f = outputSize(manifest.models[model]);
  let initialParameters;
  if (resume) {
    const previous = await usableModel(projectId, artifacts);
    const same = previous.classes.map((c) => c.id).join() === classes.map((c) => c.id).join();
    if (!same) throw new Error('Cannot resume: the classes changed since the last training; train from scratch.');
    if ((previous.mode ?? 'head') !== mode) throw new Error(`Cannot resume: the last model was trained in ${previous.mode ?? 'head'} mode.`);
    initialParameters = previous.parameters;
  }
  const features = await ensureEmbeddings(samples, { artifacts, embedImages, embedTexts, onProgress, signal, model });
  const labels = samples.map((s) => index.get(s.classId));
  const ids = samples.map((s) => s.contentId);
  let split;
  if (chosenSplit) {
    split = fixedSplit(chosenSplit, ids);
  } else {
    // Corrections (samples the model got wrong, relabelled by the user) are always trained on.
    const corrected = samples.map((s) => s.source === CORRECTION);
    split = await stratifiedSplit(ids.filter((_, i) => !corrected[i]), labels.filter((_, i) => !corrected[i]), validationShare, seed);
    split.train.push(...ids.filter((_, i) => corrected[i]));
  }
  const rowOf = new Map(ids.map((id, i) => [id, i]));
  const pick = (subset) => {
    const rows = subset.map((id) => rowOf.get(id));
    return { features: gather(features, f, rows), labels: Int32Array.from(rows.map((r) => labels[r])) };
  };
  let train = pick(split.train);
  const validation = pick(split.validation);
  if (augment > 0) train = await withAugmentedViews(train, split.train.map((id) => samples[rowOf.get(id)]), augment,
    { artifacts, embedImages, onProgress, signal, seed, model });
  const result = await trainHead({
    artifacts, mode, train, validation, numClasses: classes.length, seed, signal, initialParameters, ...trainOptions,
    onProgress: (p) => onProgress?.({ stage: 'training', ...p }),
  });
  const validationFeatures = mode === 'last_block'
    ? await runBlock({ artifacts, inputs: validation.features, parameters: result.parameters, layout: result.layout })
    : validation.features;
  const probabilities = headProbabilities(result.parameters, result.layout, validationFeatures, manifest.feature_size, classes.length);
  const predicted = Array.from(validation.labels, (_, i) => argmax(probabilities.subarray(i * classes.length, (i + 1) * classes.length)));
  const metrics = classificationReport(Array.from(validation.labels), predicted, classes.map((c) => c.name), split.validation);
  const record = {
    id: crypto.randomUUID(), projectId, created: new Date().toISOString(), mode,
    classes: classes.map((c) => ({ id: c.id, name: c.name })), backboneId: backboneId(manifest),
    artifacts: artifactsRecord(artifactSet),
    parameters: result.parameters, layout: result.layout, history: result.history, metrics,
    split, options: { mode, validationShare, seed, augment, fixedSplit: Boolean(chosenSplit), ...trainOptions },
    sampleCount: samples.length,
    datasetDigest: await datasetDigest(classes, samples),
  };
  return transaction(['models', 'projects', 'changes', 'meta'], 'readwrite', async (s) => {
    const project = await get(s.projects, projectId);
    if (!project) throw new Error('The project was deleted while it trained.');
    const log = await changeWriter(s);
    const stored = await log.save('model', record);
    await log.setHead(project, stored.id, { updated: stored.created });
    await pruneModels(s, log, projectId, stored.id);
    return stored;
  }, 'the trained model');
}

/**
 * Delete a project's models beyond the current one and the KEEP_PREVIOUS_MODELS newest others (in `s`'s
 * transaction, tombstoned through `log`).
 */
async function pruneModels(s, log, projectId, currentId) {
  const others = (await getAllFromIndex(s.models, 'project', projectId))
    .filter((m) => m.id !== currentId)
    .sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
  for (const old of others.slice(KEEP_PREVIOUS_MODELS)) await log.drop('model', projectId, old.id);
}

function argmax(row) {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Store models brought in by importProject and make `currentId` the project's model. */
export async function saveImportedModels(projectId, models, currentId) {
  await transaction(['models', 'projects', 'changes', 'meta'], 'readwrite', async (s) => {
    const log = await changeWriter(s);
    for (const model of models) await log.save('model', model);
    await log.setHead(await get(s.projects, projectId), currentId);
    await pruneModels(s, log, projectId, currentId);
  }, `${models.length} model(s)`);
}

export async function currentModel(projectId) {
  return transaction(['projects', 'models'], 'readonly', async ({ projects, models }) => {
    const project = await get(projects, projectId);
    if (!project) throw new Error(`No project with id ${projectId}.`);
    return project.modelId ? get(models, project.modelId) : null;
  });
}

export async function listModels(projectId) {
  return transaction(['models'], 'readonly', ({ models }) => getAllFromIndex(models, 'project', projectId));
}

/** Top-k classes for an image with the project's current model. */
export async function predictImage(projectId, image, { artifacts, topK = 3, embedImages, headProbabilities, runBlock }) {
  const model = await usableModel(projectId, artifacts);
  const lastBlock = model.mode === 'last_block';
  const result = await embedImages([image], { artifacts, model: lastBlock ? 'backbone_trunk' : 'backbone' });
  if (result.failures.length) throw new Error(result.failures[0].message);
  const features = lastBlock
    ? await runBlock({ artifacts, inputs: result.features, parameters: model.parameters, layout: model.layout })
    : result.features;
  const probabilities = headProbabilities(model.parameters, model.layout, features, features.length, model.classes.length);
  return model.classes
    .map((c, i) => ({ classId: c.id, name: c.name, probability: probabilities[i] }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, topK);
}

/**
 * Class probabilities of texts with the project's current model: {classes: names, probabilities
 * [texts.length × classes]} (the encoder batched by token length, the head here).
 */
export async function predictTexts(projectId, texts, { artifacts, onProgress, signal, embedTexts, headProbabilities }) {
  const model = await usableModel(projectId, artifacts);
  const result = await embedTexts(texts, { artifacts, onProgress, signal });
  const probabilities = headProbabilities(model.parameters, model.layout, result.features, result.featureSize, model.classes.length);
  return { classes: model.classes.map((c) => c.name), classIds: model.classes.map((c) => c.id), probabilities };
}

/** Top-k classes for one text with the project's current model. */
export async function predictText(projectId, text, { topK = 3, ...options }) {
  const { classIds, classes, probabilities } = await predictTexts(projectId, [text], options);
  return classes
    .map((name, i) => ({ classId: classIds[i], name, probability: probabilities[i] }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, topK);
}
