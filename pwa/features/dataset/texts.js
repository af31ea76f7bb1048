// Text samples of text projects, stored like images (projects.js): content-addressed by the sha256 of
// the text's UTF-8 bytes, the text itself in the `blobs` store as a text/plain Blob (no thumbnail), so
// sync pushes sample records and blob bytes unchanged.
import { changeWriter, get, put, transaction } from '../../db.js';
import { sha256Hex } from './images.js';
import { CORRECTION, dropIfUnused, getProject, listSamples, moveSamples, projectKind } from './projects.js';
import { textProblem as textRuleProblem } from '../text/rules.js';

export { MAX_TEXT_CHARACTERS } from '../text/rules.js';
export const TEXT_TYPE = 'text/plain;charset=utf-8';

const now = () => new Date().toISOString();
const LOG = ['changes', 'meta'];

/** Why `text` cannot be a sample, or null when it can (the rules of features/text/rules.js). */
export function textProblem(text) {
  if (typeof text !== 'string') return `not text (${text === null ? 'null' : typeof text})`;
  return textRuleProblem(text);
}

/** {contentId, bytes} of a text: the sha256 hex of its UTF-8 bytes names it. */
export async function textContent(text) {
  const bytes = new TextEncoder().encode(text);
  return { contentId: await sha256Hex(bytes), bytes };
}

async function textProject(projectId) {
  const project = await getProject(projectId);
  if (projectKind(project) !== 'text') throw new Error(`Project "${project.name}" holds images, not texts.`);
  return project;
}

/** A short name for a text sample: its first words. */
const nameOf = (text) => {
  const line = [...text.trim().replace(/\s+/g, ' ').slice(0, 240)];  // by code point: an emoji is not cut in two
  return line.length > 60 ? `${line.slice(0, 59).join('')}…` : line.join('');
};

/**
 * Add texts to a class of a text project. Texts already in the project (in any class, or twice in
 * `texts`), empty, longer than MAX_TEXT_CHARACTERS or holding NUL are skipped with a reason; the rest
 * are saved in one transaction (all or nothing when storage is full).
 * `names[i]` names texts[i] in skip reasons and the sample (default: its first words); `metadata[i]`
 * may carry {source, added} (restored from an exported project).
 * @returns {Promise<{added: object[], skipped: {name: string, reason: string}[]}>}
 */
export async function addTexts(projectId, classId, texts, { source = 'typed', names = [], metadata = [] } = {}) {
  await textProject(projectId);
  if (!Array.isArray(texts)) throw new TypeError('addTexts(projectId, classId, texts): texts must be an array of strings');
  const cls = await transaction(['classes'], 'readonly', ({ classes }) => get(classes, classId));
  if (!cls || cls.projectId !== projectId) throw new Error(`No class ${classId} in project ${projectId}.`);
  const skipped = [];
  const read = [];
  // Hashing happens before the transaction: IndexedDB commits when it sees no request.
  for (const [i, text] of texts.entries()) {
    const problem = textProblem(text);
    const name = names[i] ?? (problem ? `text ${i + 1}` : nameOf(text));
    if (problem) {
      skipped.push({ name, reason: problem });
      continue;
    }
    read.push({ name, text, meta: metadata[i] ?? {}, ...(await textContent(text)) });
  }
  const added = [];
  await transaction(['samples', 'blobs', 'classes', ...LOG], 'readwrite', async (s) => {
    const log = await changeWriter(s);
    const inThisCall = new Set();
    for (const item of read) {
      const existing = await get(s.samples, [projectId, item.contentId]);
      if (existing || inThisCall.has(item.contentId)) {
        const where = existing ? (await get(s.classes, existing.classId))?.name : cls.name;
        skipped.push({ name: item.name, reason: `already in this project (class "${where}")` });
        continue;
      }
      inThisCall.add(item.contentId);
      await put(s.blobs, { contentId: item.contentId, image: new Blob([item.bytes], { type: TEXT_TYPE }), thumbnail: null });
      added.push(await log.save('sample', {
        projectId, contentId: item.contentId, classId, name: item.name,
        source: item.meta.source ?? source, added: item.meta.added ?? now(), format: 'text', size: item.bytes.byteLength,
      }));
    }
  }, `${read.length} text(s)`);
  return { added, skipped };
}

/** The text stored under `contentId`. */
export async function getText(contentId) {
  const record = await transaction(['blobs'], 'readonly', ({ blobs }) => get(blobs, contentId));
  if (!record) throw new Error(`No text ${contentId} in storage.`);
  return record.image.text();
}

/** Texts of `contentIds`, in their order (one read transaction). */
export async function getTexts(contentIds) {
  const records = await transaction(['blobs'], 'readonly', ({ blobs }) => Promise.all(contentIds.map((id) => get(blobs, id))));
  return Promise.all(records.map((record, i) => {
    if (!record) throw new Error(`No text ${contentIds[i]} in storage.`);
    return record.image.text();
  }));
}

/** A text project's samples, each with its `text`. */
export async function listTexts(projectId) {
  const samples = await listSamples(projectId);
  const texts = await getTexts(samples.map((s) => s.contentId));
  return samples.map((s, i) => ({ ...s, text: texts[i] }));
}

/**
 * Replace a sample's text: the new text joins the same class with the same source, the old sample is
 * deleted (its bytes and embeddings too, when no project holds them), in one transaction. Its content
 * id changes with its text. Rejects when the new text is unusable or already in the project.
 * @returns {Promise<object>} the new sample
 */
export async function editText(projectId, contentId, text) {
  await textProject(projectId);
  const problem = textProblem(text);
  if (problem) throw new Error(`The new text is ${problem}.`);
  const { contentId: newId, bytes } = await textContent(text);
  return transaction(['samples', 'blobs', 'embeddings', 'classes', ...LOG], 'readwrite', async (s) => {
    const old = await get(s.samples, [projectId, contentId]);
    if (!old) throw new Error(`No text ${contentId} in this project.`);
    if (newId === contentId) return old;
    const clash = await get(s.samples, [projectId, newId]);
    if (clash) throw new Error(`That text is already in this project (class "${(await get(s.classes, clash.classId))?.name}").`);
    const log = await changeWriter(s);
    await put(s.blobs, { contentId: newId, image: new Blob([bytes], { type: TEXT_TYPE }), thumbnail: null });
    const sample = await log.save('sample', {
      ...old, contentId: newId, name: nameOf(text), size: bytes.byteLength, added: now(),
    });
    await log.drop('sample', projectId, [projectId, contentId]);
    await dropIfUnused(s, contentId);
    return sample;
  }, 'the edited text');
}

/**
 * A wrong prediction corrected: the text goes into class `classId` as a correction (always trained on,
 * never held out) — added when new, moved (and marked) when already in the project.
 * @returns {Promise<{contentId: string, moved: boolean}>}
 */
export async function addTextCorrection(projectId, classId, text) {
  await textProject(projectId);
  const problem = textProblem(text);
  if (problem) throw new Error(`The text is ${problem}.`);
  const { contentId } = await textContent(text);
  const existing = await transaction(['samples'], 'readonly', ({ samples }) => get(samples, [projectId, contentId]));
  if (existing) {
    await moveSamples(projectId, [contentId], classId, { source: CORRECTION });
    return { contentId, moved: true };
  }
  const { added, skipped } = await addTexts(projectId, classId, [text], { source: CORRECTION });
  if (!added.length) throw new Error(skipped[0].reason);
  return { contentId, moved: false };
}
