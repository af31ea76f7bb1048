// Projects, classes and samples in IndexedDB (see db.js). Every write stamps a revision and logs the
// record's new state or tombstone (changeWriter), the input of sync (features/sync/).
import {
  changeWriter, count, countFromIndex, get, getAll, getAllFromIndex, getAllKeysFromIndex, put, remove, requestPersistence,
  transaction,
} from '../../db.js';
import { readImage, sha256Hex } from './images.js';
import { isBlankName, validateClassName } from './names.js';

const now = () => new Date().toISOString();
const newId = () => crypto.randomUUID();

/** The `source` of a sample put into its class by correcting a wrong prediction: always trained on. */
export const CORRECTION = 'correction';

/** Stores a delete touches: an image's bytes and embeddings go with the last sample that holds it. */
const CONTENT_STORES = ['samples', 'blobs', 'embeddings'];
/** Stores every replicated write needs besides the record's own: the change log and the clock. */
const LOG = ['changes', 'meta'];

/** Delete an image's bytes and every embedding of it once no sample (of any project) holds it. */
export async function dropIfUnused(s, contentId) {
  if (await countFromIndex(s.samples, 'content', contentId)) return;
  await remove(s.blobs, contentId);
  for (const key of await getAllKeysFromIndex(s.embeddings, 'content', contentId)) await remove(s.embeddings, key);
}

/** What a project's samples are: images, or texts (features/dataset/texts.js). */
export const PROJECT_KINDS = ['image', 'text'];

/** A project's kind; records made before text projects have none and hold images. */
export const projectKind = (project) => project?.kind ?? 'image';

export async function createProject(name, { kind = 'image' } = {}) {
  const title = String(name ?? '').trim();
  if (isBlankName(title)) throw new Error('A project needs a name.'); // the server's rule too (rules.json)
  if (!PROJECT_KINDS.includes(kind)) throw new Error(`A project holds images or texts, not "${kind}".`);
  let project = { id: newId(), name: title, kind, created: now(), updated: now() };
  let first = false;
  await transaction(['projects', ...LOG], 'readwrite', async (s) => {
    first = (await count(s.projects)) === 0;
    project = await (await changeWriter(s)).save('project', project);
  }, `project "${title}"`);
  // The first project is when there is something to lose: ask the browser not to evict it.
  if (first) await requestPersistence().catch(() => false);
  return project;
}

export const listProjects = () => transaction(['projects'], 'readonly', ({ projects }) => getAll(projects));

export async function getProject(projectId) {
  const project = await transaction(['projects'], 'readonly', ({ projects }) => get(projects, projectId));
  if (!project) throw new Error(`No project with id ${projectId}.`);
  return project;
}

/**
 * Delete a project with its classes, samples and models (each tombstoned in the change log, its head
 * too); image bytes and embeddings go when no project uses them.
 */
export async function deleteProject(projectId) {
  await transaction(['projects', 'classes', ...CONTENT_STORES, 'models', ...LOG], 'readwrite', async (s) => {
    const log = await changeWriter(s);
    for (const sample of await getAllFromIndex(s.samples, 'project', projectId)) {
      await log.drop('sample', projectId, [projectId, sample.contentId]);
      await dropIfUnused(s, sample.contentId);
    }
    for (const c of await getAllFromIndex(s.classes, 'project', projectId)) await log.drop('class', projectId, c.id);
    for (const m of await getAllFromIndex(s.models, 'project', projectId)) await log.drop('model', projectId, m.id);
    if (await get(s.projects, projectId)) {
      await log.dropHead(projectId);
      await log.drop('project', projectId, projectId);
    }
  });
}

export async function listClasses(projectId) {
  const classes = await transaction(['classes'], 'readonly', ({ classes: store }) => getAllFromIndex(store, 'project', projectId));
  return classes.sort((a, b) => a.order - b.order);
}

function checkName(name, classes, except = null) {
  const reason = validateClassName(name);
  if (reason) throw new Error(reason);
  const clash = classes.find((c) => c.id !== except && c.name.toLowerCase() === name.toLowerCase());
  if (clash) throw new Error(`class "${clash.name}" already exists`);
}

export async function addClass(projectId, name) {
  await getProject(projectId);
  const classes = await listClasses(projectId);
  checkName(name, classes);
  const cls = { id: newId(), projectId, name, order: classes.length ? Math.max(...classes.map((c) => c.order)) + 1 : 0, created: now() };
  return transaction(['classes', ...LOG], 'readwrite', async (s) => (await changeWriter(s)).save('class', cls), `class "${name}"`);
}

export async function renameClass(classId, name) {
  const cls = await transaction(['classes'], 'readonly', ({ classes }) => get(classes, classId));
  if (!cls) throw new Error(`No class with id ${classId}.`);
  checkName(name, await listClasses(cls.projectId), classId);
  return transaction(['classes', ...LOG], 'readwrite', async (s) => (await changeWriter(s)).save('class', { ...cls, name }));
}

export async function deleteClass(classId) {
  await transaction(['classes', ...CONTENT_STORES, ...LOG], 'readwrite', async (s) => {
    const cls = await get(s.classes, classId);
    if (!cls) return;
    const log = await changeWriter(s);
    for (const sample of await getAllFromIndex(s.samples, 'class', [cls.projectId, classId])) {
      await log.drop('sample', cls.projectId, [cls.projectId, sample.contentId]);
      await dropIfUnused(s, sample.contentId);
    }
    await log.drop('class', cls.projectId, classId);
  });
}

/**
 * Add image files to a class. Files that are not usable images, or already in the project, are
 * skipped with a reason; the rest are saved in one transaction (all or nothing on a full disk).
 * `metadata[i]` may carry {source, added} for files[i] (restored from an exported dataset).
 * @returns {Promise<{added: object[], skipped: {name: string, reason: string}[]}>}
 */
export async function addSamples(projectId, classId, files, { source = 'file', metadata = [] } = {}) {
  const cls = await transaction(['classes'], 'readonly', ({ classes }) => get(classes, classId));
  if (!cls || cls.projectId !== projectId) throw new Error(`No class ${classId} in project ${projectId}.`);
  const skipped = [];
  const read = [];
  // Decoding and hashing happen before the transaction: IndexedDB commits when it sees no request.
  for (const [i, file] of [...files].entries()) {
    const name = file.name || `image ${i + 1}`;
    try {
      read.push({ name, meta: metadata[i] ?? {}, ...(await readImage(file)) });
    } catch (error) {
      skipped.push({ name, reason: error.message });
    }
  }
  const added = [];
  await transaction(['samples', 'blobs', 'classes', ...LOG], 'readwrite', async (s) => {
    const log = await changeWriter(s);
    for (const image of read) {
      const existing = await get(s.samples, [projectId, image.contentId]);
      if (existing || added.some((a) => a.contentId === image.contentId)) {
        const where = existing ? (await get(s.classes, existing.classId))?.name : cls.name;
        skipped.push({ name: image.name, reason: `already in this project (class "${where}")` });
        continue;
      }
      await put(s.blobs, { contentId: image.contentId, image: image.image, thumbnail: image.thumbnail });
      added.push(await log.save('sample', {
        projectId, contentId: image.contentId, classId, name: image.name,
        source: image.meta.source ?? source, added: image.meta.added ?? now(),
        format: image.format, width: image.width, height: image.height, size: image.image.size,
      }));
    }
  }, `${read.length} image(s)`);
  return { added, skipped };
}

export const listSamples = (projectId) =>
  transaction(['samples'], 'readonly', ({ samples }) => getAllFromIndex(samples, 'project', projectId));

/** The original image Blob of a sample. */
export async function getImage(contentId) {
  const record = await transaction(['blobs'], 'readonly', ({ blobs }) => get(blobs, contentId));
  if (!record) throw new Error(`No image ${contentId} in storage.`);
  return record.image;
}

/** Store names of the change log's record kinds, for readers of the older {op, store} shape. */
const STORE_OF_KIND = { project: 'projects', class: 'classes', sample: 'samples', model: 'models', head: 'projects' };

/**
 * A project's change-log entries not yet sent: {seq, projectId, kind, id, rev, deleted}, plus
 * op ('put'|'delete') and store, as earlier versions logged them.
 */
export const listChanges = async (projectId) =>
  (await transaction(['changes'], 'readonly', ({ changes }) => getAllFromIndex(changes, 'project', projectId)))
    .map((c) => ({ ...c, op: c.deleted ? 'delete' : 'put', store: STORE_OF_KIND[c.kind] }));

export async function renameProject(projectId, name) {
  const title = String(name ?? '').trim();
  if (isBlankName(title)) throw new Error('A project needs a name.'); // the server's rule too (rules.json)
  const project = await getProject(projectId);
  return transaction(['projects', ...LOG], 'readwrite', async (s) => {
    // re-read inside the transaction: the sync worker may have changed the head meanwhile
    const current = (await get(s.projects, projectId)) ?? project;
    return (await changeWriter(s)).save('project', { ...current, name: title, updated: now() });
  });
}

/**
 * Move samples (by content id) to another class of the same project. `source` (e.g. CORRECTION)
 * replaces their source too.
 */
export async function moveSamples(projectId, contentIds, classId, { source } = {}) {
  await transaction(['samples', 'classes', ...LOG], 'readwrite', async (s) => {
    const cls = await get(s.classes, classId);
    if (!cls || cls.projectId !== projectId) throw new Error(`No class ${classId} in project ${projectId}.`);
    const log = await changeWriter(s);
    for (const contentId of contentIds) {
      const sample = await get(s.samples, [projectId, contentId]);
      if (!sample) throw new Error(`No sample ${contentId} in this project.`);
      await log.save('sample', { ...sample, classId, ...(source ? { source } : {}) });
    }
  });
}

/**
 * A wrong prediction corrected: the image goes into class `classId` as a correction (always trained
 * on, never held out for validation) — added when new, moved (and marked) when already in the project.
 * @returns {Promise<{contentId: string, moved: boolean}>}
 */
export async function addCorrection(projectId, classId, file) {
  // Samples are keyed by the sha256 of their bytes: an image already here is found without decoding it.
  const contentId = await sha256Hex(new Uint8Array(await file.arrayBuffer()));
  const existing = await transaction(['samples'], 'readonly', ({ samples }) => get(samples, [projectId, contentId]));
  if (existing) {
    await moveSamples(projectId, [contentId], classId, { source: CORRECTION });
    return { contentId, moved: true };
  }
  const { added, skipped } = await addSamples(projectId, classId, [file], { source: CORRECTION });
  if (!added.length) throw new Error(`${file.name || 'image'}: ${skipped[0].reason}`);
  return { contentId, moved: false };
}

/**
 * Delete samples (by content id); image bytes go when no project uses them.
 * @returns {Promise<{sample: object, image: Blob}[]>} what was deleted, for restoreSamples (undo)
 */
export async function deleteSamples(projectId, contentIds) {
  const deleted = [];
  await transaction([...CONTENT_STORES, ...LOG], 'readwrite', async (s) => {
    const log = await changeWriter(s);
    for (const contentId of contentIds) {
      const sample = await get(s.samples, [projectId, contentId]);
      if (!sample) continue;
      const blob = await get(s.blobs, contentId);
      await log.drop('sample', projectId, [projectId, contentId]);
      await dropIfUnused(s, contentId);
      deleted.push({ sample, blob });
    }
  });
  return deleted;
}

/** Put back what deleteSamples returned (its classes must still exist). */
export async function restoreSamples(projectId, deleted) {
  await transaction(['samples', 'blobs', ...LOG], 'readwrite', async (s) => {
    const log = await changeWriter(s);
    for (const { sample, blob } of deleted) {
      if (blob) await put(s.blobs, blob);
      await log.save('sample', sample);
    }
  }, `${deleted.length} image(s)`);
}

/** The small WebP thumbnail (at most 128 px) of a sample. */
export async function getThumbnail(contentId) {
  const record = await transaction(['blobs'], 'readonly', ({ blobs }) => get(blobs, contentId));
  if (!record) throw new Error(`No image ${contentId} in storage.`);
  return record.thumbnail ?? record.image;
}

/** The thumbnails of many samples in one read (a grid's new tiles): Blobs in the order asked, null where missing. */
export async function getThumbnails(contentIds) {
  return transaction(['blobs'], 'readonly', ({ blobs }) => Promise.all(contentIds.map(async (contentId) => {
    const record = await get(blobs, contentId);
    return record ? record.thumbnail ?? record.image : null;
  })));
}

/**
 * Bytes a project keeps in this browser: {images (originals and thumbnails), embeddings, models, total}.
 * An image shared with another project counts in both.
 */
export async function projectStorage(projectId) {
  return transaction([...CONTENT_STORES, 'models'], 'readonly', async (s) => {
    const bytes = { images: 0, embeddings: 0, models: 0 };
    for (const sample of await getAllFromIndex(s.samples, 'project', projectId)) {
      const blob = await get(s.blobs, sample.contentId);
      bytes.images += (blob?.image?.size ?? 0) + (blob?.thumbnail?.size ?? 0);
      for (const e of await getAllFromIndex(s.embeddings, 'content', sample.contentId)) bytes.embeddings += e.features.byteLength;
    }
    for (const m of await getAllFromIndex(s.models, 'project', projectId)) bytes.models += m.parameters.byteLength;
    return { ...bytes, total: bytes.images + bytes.embeddings + bytes.models };
  });
}
