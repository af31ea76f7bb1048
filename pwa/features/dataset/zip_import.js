// ImageFolder zips into projects a batch at a time: the Python worker checks the whole archive first
// (reading the File in place, keeping nothing), then hands over a batch (BATCH images, at most BATCH_BYTES)
// at a time, each saved in its own transaction. Memory holds one batch whatever the zip's size.
import { MESSAGE } from '../../protocol.js';
import { addClass, addSamples, createProject, deleteProject, getProject, listClasses } from './projects.js';

/**
 * Images read from the zip and saved per step (one IndexedDB transaction per class in it), fewer once
 * they hold BATCH_BYTES: 100 small images or a few big photos. Every commit tells the app's listeners
 * (background embedding) to look again, so steps are not made smaller than memory needs.
 */
export const BATCH = 100;
export const BATCH_BYTES = 16 * 2 ** 20;

/**
 * An ImageFolder zip's images added to an existing project, each folder into the class of that name
 * (made, in the archive's class order, when missing). `callPython(type, payload)` reaches the Python
 * worker. onProgress({done, total}) after each batch. A refused archive rejects before anything is stored.
 * @returns {Promise<{added: number, skipped: {name, reason}[], warnings: string[]}>}
 */
export async function addDatasetZip(projectId, file, callPython, { onProgress, signal } = {}) {
  await getProject(projectId);
  const opened = await callPython(MESSAGE.DATASET_ZIP_OPEN, { file });
  try {
    return await addOpened(projectId, opened, callPython, { onProgress, signal });
  } finally {
    await callPython(MESSAGE.DATASET_ZIP_CLOSE, { handle: opened.handle });
  }
}

/**
 * A new project from an ImageFolder zip (named `name`, else after the file). A refused archive rejects
 * and stores nothing; a failure while saving (a full disk) deletes the half-made project.
 * @returns {Promise<{project, added: number, skipped: {name, reason}[], warnings: string[]}>}
 */
export async function importDatasetZip(file, callPython, { name, onProgress, signal } = {}) {
  const opened = await callPython(MESSAGE.DATASET_ZIP_OPEN, { file });
  try {
    const project = await createProject(name || (file.name || 'Imported').replace(/\.zip$/i, ''));
    try {
      return { project, ...(await addOpened(project.id, opened, callPython, { onProgress, signal })) };
    } catch (error) {
      await deleteProject(project.id).catch(() => {});
      throw error;
    }
  } finally {
    await callPython(MESSAGE.DATASET_ZIP_CLOSE, { handle: opened.handle });
  }
}

async function addOpened(projectId, { handle, classes, skipped: refused, warnings, count }, callPython, { onProgress, signal }) {
  const skipped = refused.map((s) => ({ name: s.path, reason: s.reason }));
  const existing = new Map((await listClasses(projectId)).map((c) => [c.name.toLowerCase(), c]));
  const classIds = new Map();
  for (const className of classes) {
    classIds.set(className, (existing.get(className.toLowerCase()) ?? await addClass(projectId, className)).id);
  }
  let added = 0;
  let done = 0;
  for (;;) {
    signal?.throwIfAborted();
    const batch = await callPython(MESSAGE.DATASET_ZIP_READ, { handle, count: BATCH, maxBytes: BATCH_BYTES });
    if (!batch.length) break;
    // a batch holds images of one or several classes (archive order): one save per class in it
    for (const className of new Set(batch.map((s) => s.label))) {
      const members = batch.filter((s) => s.label === className);
      const files = members.map((s) => new File([s.bytes], s.name));
      const result = await addSamples(projectId, classIds.get(className), files, { source: 'zip', metadata: members.map((s) => s.metadata) });
      added += result.added.length;
      skipped.push(...result.skipped.map((s) => ({ name: `${className}/${s.name}`, reason: s.reason })));
    }
    done += batch.length;
    onProgress?.({ done, total: count });
  }
  return { added, skipped, warnings };
}
