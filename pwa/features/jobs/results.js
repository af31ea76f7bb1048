// A finished server job's result stored as an ordinary model of its project (docs/jobs.md "Result
// files"): app_model.json and parameters.bin, and for a `full` fine-tune its artifact set kept offline
// (for a text job: the fine-tuned encoder, its tokenizer and the head's training files). The model then
// predicts, evaluates, exports and keeps training on the device like any other.
import { jobFile } from './api.js';
import { appUrl, jobArtifactsPath, pruneJobArtifacts, storeJobArtifacts } from './artifacts.js';
import { parametersFrom } from '../sync/records.js';
import { getProject, listClasses, listSamples, projectKind } from '../dataset/projects.js';
import { backboneFile, backboneId } from '../artifacts.js';
import { architectureLabel, modeLabel } from '../catalog.js';
import { artifactsRecord, loadArtifactSet } from '../train/artifact_set.js';
import { datasetDigest, listModels, saveImportedModels } from '../train/engine.js';

/** The app's own text artifact set (tejas.js DEFAULT_TEXT_ARTIFACTS), where a text job's default would be. */
const DEFAULT_TEXT_ARTIFACTS = 'artifacts/text/';

/** "trained on the server: ResNet18, full fine-tune, GPU" for a model a server job made, else null. */
export function serverOrigin(model) {
  if (!model?.server) return null;
  const architecture = model.artifacts?.architecture ?? model.server.backbone;
  const device = model.server.device === 'cuda' ? 'GPU' : model.server.device === 'cpu' ? 'CPU' : null;
  return `trained on the server: ${[architectureLabel(architecture), modeLabel(model.server.mode), device]
    .filter(Boolean).join(', ')}`;
}

/** The project's model made by job `jobId`, if it is already stored (imported here, or synced from another device). */
export async function importedModel(projectId, jobId) {
  return (await listModels(projectId)).find((m) => m.server?.job === jobId) ?? null;
}

/**
 * Store job `job`'s result in `projectId` and make it the current model (older ones pruned as after a
 * run on the device). Idempotent per job. `defaultArtifacts`: the app's own (image) artifact set (URL); a
 * text job's model belongs to a text project and uses text artifacts (docs/jobs.md "Text jobs").
 * @returns {Promise<object>} the stored model record
 */
export async function importJobResult(connection, projectId, job, { defaultArtifacts, signal } = {}) {
  const existing = await importedModel(projectId, job.id);
  if (existing) return existing;
  const appModel = JSON.parse(new TextDecoder().decode(await jobFile(connection, job.id, 'app_model.json', { signal })));
  const parameters = parametersFrom(await jobFile(connection, job.id, appModel.parameters?.file ?? 'parameters.bin', { signal }));
  if (appModel.parameters?.length !== undefined && parameters.length !== appModel.parameters.length) {
    throw new Error(`The server's parameters.bin of job ${job.id} holds ${parameters.length} values, not ${appModel.parameters.length}; try again.`);
  }
  const modality = appModel.modality ?? 'image';
  const project = await getProject(projectId);
  if (projectKind(project) !== modality) {
    throw new Error(`Job ${job.id} trained ${modality === 'text' ? 'a text' : 'an image'} classifier; "${project.name}" is `
      + `${projectKind(project) === 'text' ? 'a text' : 'an image'} project, so its model cannot be used there.`);
  }
  const kind = appModel.artifacts?.kind;
  let artifacts = modality === 'text' ? appUrl(DEFAULT_TEXT_ARTIFACTS) : defaultArtifacts;
  let extra = {};
  if (kind === 'default') {
    const set = await loadArtifactSet(artifacts);
    if (set.manifest.files[backboneFile(set.manifest)].sha256 !== appModel.artifacts.backbone_sha256) {
      throw new Error('The server trained this model on another backbone than this app has (the server and the app run '
        + 'different versions), so it cannot be used here. Update the app (reload it) or the server, then train on the server again.');
    }
  } else if (kind === 'job') {
    const files = appModel.artifacts.files;
    artifacts = await storeJobArtifacts(connection, job.id, files, { signal });
    extra = { artifactsUrl: jobArtifactsPath(job.id), artifactFiles: files };
  } else {
    throw new Error(`The server's result names artifacts of an unknown kind "${kind}"; update the app.`);
  }
  const set = await loadArtifactSet(artifacts);
  const [classes, samples] = await Promise.all([listClasses(projectId), listSamples(projectId)]);
  // the server trained on what was synced: the model is current if this device holds exactly those images
  const trainedOn = new Set([...(appModel.split?.train ?? []), ...(appModel.split?.validation ?? [])]);
  const same = samples.length === trainedOn.size && samples.every((s) => trainedOn.has(s.contentId));
  const record = {
    id: crypto.randomUUID(), projectId, created: job.finished ?? new Date().toISOString(), mode: appModel.mode,
    classes: appModel.classes, backboneId: backboneId(set.manifest), artifacts: artifactsRecord(set), ...extra,
    parameters, layout: appModel.layout, history: appModel.history ?? [], metrics: appModel.metrics, split: appModel.split,
    options: appModel.options ?? job.options ?? {}, sampleCount: appModel.sampleCount ?? job.images,
    datasetDigest: same ? await datasetDigest(classes, samples) : `server:${job.id}`,
    server: { ...appModel.server, job: job.id },
  };
  await saveImportedModels(projectId, [record], record.id);
  await pruneJobArtifacts().catch(() => {});  // sets of models the new one pushed out
  return record;
}
