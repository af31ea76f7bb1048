// A project's training, prediction and evaluation: embeddings cached per (image, backbone), the head
// trained in the train worker, the model stored only when training finished (a cancelled or failed
// run leaves the previous model in place).
import { get, getAllFromIndex, logChange, put, transaction } from '../../db.js';
import { getImage, listClasses, listSamples } from '../dataset/projects.js';
import { classificationReport } from './metrics.js';
import { stratifiedSplit } from './split.js';

const NO_AUGMENTATION = 'none';
const manifests = new Map();

export async function loadManifest(artifacts) {
  if (!manifests.has(artifacts)) {
    manifests.set(artifacts, fetch(new URL('manifest.json', artifacts)).then((r) => {
      if (!r.ok) throw new Error(`${new URL(artifacts).pathname}manifest.json: HTTP ${r.status}; export artifacts first`);
      return r.json();
    }));
  }
  try {
    return await manifests.get(artifacts);
  } catch (error) {
    manifests.delete(artifacts);
    throw error;
  }
}

/** Identifies the backbone's weights: embeddings from another backbone are never mixed in. */
export const backboneId = (manifest) => manifest.files['backbone.onnx'].sha256.slice(0, 16);

/** Features for `samples` (cached ones from IndexedDB, the rest embedded now and cached). */
export async function ensureEmbeddings(samples, { artifacts, embedImages, onProgress, signal }) {
  const manifest = await loadManifest(artifacts);
  const backbone = backboneId(manifest);
  const cached = await transaction(['embeddings'], 'readonly', async ({ embeddings }) =>
    Promise.all(samples.map((s) => get(embeddings, [s.contentId, backbone, NO_AUGMENTATION]))));
  const missing = samples.filter((_, i) => !cached[i]);
  const byContent = new Map(cached.filter(Boolean).map((e) => [e.contentId, e.features]));
  if (missing.length) {
    const blobs = await Promise.all(missing.map((s) => getImage(s.contentId)));
    const result = await embedImages(blobs, { artifacts, signal, onProgress: (p) => onProgress?.({ stage: 'embedding', ...p }) });
    if (result.failures.length) {
      const first = result.failures[0];
      throw new Error(`${missing[first.index].name}: ${first.message}`);
    }
    const f = result.featureSize;
    const rows = missing.map((s, i) => ({
      contentId: s.contentId, backboneId: backbone, augmentationId: NO_AUGMENTATION,
      features: result.features.slice(i * f, (i + 1) * f),
    }));
    await transaction(['embeddings'], 'readwrite', async ({ embeddings }) => {
      for (const row of rows) await put(embeddings, row);
    }, `${rows.length} embeddings`);
    rows.forEach((r) => byContent.set(r.contentId, r.features));
  }
  const featureSize = manifest.feature_size;
  const out = new Float32Array(samples.length * featureSize);
  samples.forEach((s, i) => out.set(byContent.get(s.contentId), i * featureSize));
  return out;
}

function gather(features, featureSize, indices) {
  const out = new Float32Array(indices.length * featureSize);
  indices.forEach((row, i) => out.set(features.subarray(row * featureSize, (row + 1) * featureSize), i * featureSize));
  return out;
}

/**
 * Train the project's classifier. options: {epochs, batchSize, learningRate, validationShare, seed,
 * artifacts, onProgress, signal}. Resolves with the stored model record.
 */
export async function trainProject(projectId, options, { embedImages, trainHead, headProbabilities }) {
  const { artifacts, validationShare = 0.2, seed = 0, resume = false, onProgress, signal, ...trainOptions } = options;
  const classes = await listClasses(projectId);
  if (classes.length < 2) throw new Error('Training needs at least 2 classes.');
  const samples = await listSamples(projectId);
  const index = new Map(classes.map((c, i) => [c.id, i]));
  for (const c of classes) {
    const count = samples.filter((s) => s.classId === c.id).length;
    if (count < 2) throw new Error(`Class "${c.name}" has ${count} image${count === 1 ? '' : 's'}; add at least 2 to train.`);
  }
  const manifest = await loadManifest(artifacts);
  const f = manifest.feature_size;
  const features = await ensureEmbeddings(samples, { artifacts, embedImages, onProgress, signal });
  const labels = samples.map((s) => index.get(s.classId));
  const ids = samples.map((s) => s.contentId);
  const split = await stratifiedSplit(ids, labels, validationShare, seed);
  const rowOf = new Map(ids.map((id, i) => [id, i]));
  const pick = (subset) => {
    const rows = subset.map((id) => rowOf.get(id));
    return { features: gather(features, f, rows), labels: Int32Array.from(rows.map((r) => labels[r])) };
  };
  const train = pick(split.train);
  const validation = pick(split.validation);
  let initialParameters;
  if (resume) {
    const previous = await currentModel(projectId);
    const same = previous && previous.classes.map((c) => c.id).join() === classes.map((c) => c.id).join();
    if (!same) throw new Error('Cannot resume: the classes changed since the last training; train from scratch.');
    initialParameters = previous.parameters;
  }
  const result = await trainHead({
    artifacts, train, validation, numClasses: classes.length, seed, signal, initialParameters, ...trainOptions,
    onProgress: (p) => onProgress?.({ stage: 'training', ...p }),
  });
  const probabilities = headProbabilities(result.parameters, result.layout, validation.features, f, classes.length);
  const predicted = Array.from(validation.labels, (_, i) => argmax(probabilities.subarray(i * classes.length, (i + 1) * classes.length)));
  const metrics = classificationReport(Array.from(validation.labels), predicted, classes.map((c) => c.name), split.validation);
  const model = {
    id: crypto.randomUUID(), projectId, created: new Date().toISOString(),
    classes: classes.map((c) => ({ id: c.id, name: c.name })), backboneId: backboneId(manifest),
    parameters: result.parameters, layout: result.layout, history: result.history, metrics,
    split, options: { validationShare, seed, ...trainOptions }, sampleCount: samples.length,
  };
  await transaction(['models', 'projects', 'changes'], 'readwrite', async (s) => {
    await put(s.models, model);
    const project = await get(s.projects, projectId);
    await put(s.projects, { ...project, modelId: model.id, updated: model.created });
    await logChange(s.changes, projectId, 'put', 'models', model.id);
  }, 'the trained model');
  return model;
}

function argmax(row) {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/** Store models brought in by importProject and make `currentId` the project's model. */
export async function saveImportedModels(projectId, models, currentId) {
  await transaction(['models', 'projects', 'changes'], 'readwrite', async (s) => {
    for (const model of models) {
      await put(s.models, model);
      await logChange(s.changes, projectId, 'put', 'models', model.id);
    }
    const project = await get(s.projects, projectId);
    await put(s.projects, { ...project, modelId: currentId });
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
export async function predictImage(projectId, image, { artifacts, topK = 3, embedImages, headProbabilities }) {
  const model = await currentModel(projectId);
  if (!model) throw new Error('This project has no trained model yet; train it first.');
  const result = await embedImages([image], { artifacts });
  if (result.failures.length) throw new Error(result.failures[0].message);
  const probabilities = headProbabilities(model.parameters, model.layout, result.features, result.featureSize, model.classes.length);
  return model.classes
    .map((c, i) => ({ classId: c.id, name: c.name, probability: probabilities[i] }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, topK);
}
