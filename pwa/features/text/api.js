// Tejas' API for text projects: CSV and one-file-per-class import through the core's reader, prediction
// with a text project's model, its exports (dataset CSV, tokenizer, the texts of a project file) and the
// text model kept offline. pwa/tejas.js re-exports the public part unchanged; the app's services it shares
// with image projects (the Python worker, text embedding, the head, a project's artifacts) come in through
// createTextApi's argument, so this module imports nothing from tejas.js.
import * as projects from '../dataset/projects.js';
import * as texts from '../dataset/texts.js';
import { loadManifest, predictText as predictTextWith, predictTexts as predictTextsWith } from '../train/engine.js';
import { addTextRows, checkClassCount, datasetCsv, readTextCsv as readTextCsvWith } from './csv.js';

export { addTextCorrection, addTexts, editText, getText, listTexts, MAX_TEXT_CHARACTERS } from '../dataset/texts.js';

const APP_ROOT = new URL('../../', import.meta.url);

/** The text encoder, tokenizer and head-training files of text projects. */
export const DEFAULT_TEXT_ARTIFACTS = new URL('artifacts/text/', APP_ROOT).href;

let textArtifactsOffline = null;
/**
 * Fetch the text model's files once per page, in the background, so that the service worker keeps each
 * in its cache (it keeps them on first fetch) and a text project works offline once it was opened online.
 * Which files: the worker's own list of them (ON_DEMAND in precache.js, which tools/precache.py writes
 * from the text manifest: the one list of them), those under `artifacts`. Resolves true when all were
 * fetched; false without a service worker, when the list cannot be had (offline) or names no file there.
 */
export function keepTextArtifactsOffline(artifacts = DEFAULT_TEXT_ARTIFACTS) {
  if (!globalThis.navigator?.serviceWorker?.controller) return Promise.resolve(false);  // no cache to fill
  textArtifactsOffline ??= (async () => {
    const { ON_DEMAND } = await import(new URL('precache.js', APP_ROOT).href);
    const folder = new URL(artifacts, APP_ROOT).href;
    const urls = Object.keys(ON_DEMAND).map((file) => new URL(file, APP_ROOT).href).filter((url) => url.startsWith(folder));
    if (!urls.length) return false;
    const responses = await Promise.all(urls.map((url) => fetch(url).then((r) => r.arrayBuffer().then(() => r.ok))));
    return responses.every(Boolean);
  })().catch(() => {
    textArtifactsOffline = null;  // offline now: try again on the next use
    return false;
  });
  return textArtifactsOffline;
}

// A text project file holds dataset.csv (the dataset as exportDatasetCsv writes it, for people and other
// tools) and texts.json, the exact texts with their classes and sources, which importProject reads (a CSV
// has no sources, and reads a text's \r line breaks back as \n, which changes the text's id).
export const TEXTS_FILE = 'texts.json';

const fileLabel = (file) => file.name || 'texts.csv';
const readSkips = (read, file) => read.skipped.map((s) => ({ row: s.row, name: fileLabel(file), reason: s.reason }));

/**
 * The text-project API over the app's services:
 * {callPython(type, payload, options), embedTexts(texts, options), headProbabilities(...),
 *  projectArtifacts(projectId, artifacts?), projectOfKind(projectId, kind, instead), foreground(work, options),
 *  createProject(name, {kind}) (tejas.createProject: a text project's model is then kept offline)}
 * (foreground: backgroundEmbedding.foreground, so predictions go before background embedding).
 */
export function createTextApi({
  callPython, embedTexts, headProbabilities, projectArtifacts, projectOfKind, foreground, createProject,
}) {
  const createTextProject = (name) => createProject(name, { kind: 'text' });

  /**
   * The most classes a text project may have with `artifacts` (a URL or a promise of one): their
   * manifest's max_classes, as the head they train serves no more. Undefined (the core's default applies)
   * when the manifest cannot be had now, e.g. offline before the text model was first used: reading a
   * CSV needs no model. Adding data asks the default text artifacts, never a server job's set: that
   * would download a whole fine-tuned encoder (or fail offline) only to learn a number.
   */
  async function textClassLimit(artifacts = DEFAULT_TEXT_ARTIFACTS) {
    try {
      return (await loadManifest(await artifacts)).max_classes;
    } catch {
      return undefined;
    }
  }

  /**
   * A CSV (layout 'csv') or a plain text file of one sample per line (layout 'lines') read by the core:
   * {rows: [{text, label, row}], skipped: [{row, reason}], notes, encoding, delimiter, header, classes}.
   * A CSV with more distinct labels than `maxClasses` is refused whole; by default that is the max_classes
   * of `artifacts` (default: the text artifacts), what a text project trained with them can have.
   */
  const readTextCsv = async (file, { artifacts, maxClasses, ...options } = {}) => readTextCsvWith(
    callPython, file, { ...options, maxClasses: maxClasses ?? await textClassLimit(artifacts) });

  return {
    readTextCsv,

    /** Top-k [{classId, name, probability}] for a text with the text project's current model. */
    async predictText(projectId, text, { artifacts, topK = 3 } = {}) {
      return foreground(async () => {
        await projectOfKind(projectId, 'text', 'use predict() for images');
        artifacts = await projectArtifacts(projectId, artifacts);
        return predictTextWith(projectId, text, { artifacts, topK, embedTexts, headProbabilities });
      });
    },

    /**
     * Class probabilities of many texts with the text project's current model.
     * @returns {Promise<{classes: string[], classIds: string[], probabilities: Float32Array}>} [texts.length × classes]
     */
    async predictTexts(projectId, textList, { artifacts, onProgress, signal } = {}) {
      return foreground(async () => {
        await projectOfKind(projectId, 'text', 'use predictMany() for images');
        artifacts = await projectArtifacts(projectId, artifacts);
        return predictTextsWith(projectId, textList, { artifacts, onProgress, signal, embedTexts, headProbabilities });
      }, { signal });
    },

    /** The text project's model's tokenizer.json (beside an exported text ONNX file, for Python `tokenizers`). */
    async exportTokenizer(projectId, { artifacts } = {}) {
      await projectOfKind(projectId, 'text', 'image models need no tokenizer');
      artifacts = await projectArtifacts(projectId, artifacts);
      const manifest = await loadManifest(artifacts);
      const response = await fetch(new URL(manifest.text.tokenizer, artifacts));
      if (!response.ok) throw new Error(`${manifest.text.tokenizer}: HTTP ${response.status}; the text model files are missing`);
      return new Blob([await response.arrayBuffer()], { type: 'application/json' });
    },

    /** The text project's texts as CSV (header `text,label`, RFC 4180, formula cells neutralised). */
    async exportDatasetCsv(projectId) {
      await projectOfKind(projectId, 'text', 'export its images with exportDatasetZip()');
      return new Blob([await datasetCsv(callPython, projectId)], { type: 'text/csv' });
    },

    /**
     * A new text project from a CSV: a class per label. @returns {Promise<{project, added: number,
     * skipped: [{row, name, reason}], notes: string[]}>}; a file refused whole rejects and stores nothing.
     */
    async importTextCsv(file, { name } = {}) {
      const read = await readTextCsv(file);
      if (!read.rows.length) throw new Error(`${fileLabel(file)}: no usable rows${read.skipped.length ? ` (${read.skipped[0].reason})` : ''}`);
      const project = await createTextProject(name || fileLabel(file).replace(/\.(csv|tsv|txt)$/i, ''));
      const result = await addTextRows(project.id, read.rows, { fileName: fileLabel(file) });
      return { project, added: result.added, skipped: [...readSkips(read, file), ...result.skipped], notes: read.notes };
    },

    /**
     * A CSV's rows added to an existing text project, each into the class of its label (made when missing).
     * Rejects, adding nothing, when the project's classes and the file's labels together are more than its
     * artifacts' max_classes.
     */
    async addTextCsv(projectId, file) {
      await projectOfKind(projectId, 'text', 'add images with addSamples()');
      const maxClasses = await textClassLimit();
      const read = await readTextCsv(file, { maxClasses });
      await checkClassCount(projectId, Object.keys(read.classes), maxClasses, fileLabel(file));
      const result = await addTextRows(projectId, read.rows, { fileName: fileLabel(file) });
      return { added: result.added, skipped: [...readSkips(read, file), ...result.skipped], notes: read.notes };
    },

    /**
     * "One file per class": each file's name without its extension is the class, each non-empty line a sample.
     * Rejects, adding nothing, when the project's classes and the files' classes together are more than its
     * artifacts' max_classes.
     * @returns {Promise<{added: number, skipped: [{row, name, reason}], notes: string[]}>}
     */
    async addTextFiles(projectId, files) {
      await projectOfKind(projectId, 'text', 'add images with addSamples()');
      const classOf = (file) => fileLabel(file).replace(/\.[^.]*$/, '');
      const maxClasses = await textClassLimit();
      const named = files.length === 1 ? fileLabel(files[0]) : `${files.length} files`;
      await checkClassCount(projectId, [...files].map(classOf), maxClasses, named);
      const out = { added: 0, skipped: [], notes: [] };
      for (const file of files) {
        const label = classOf(file);
        const read = await readTextCsv(file, { layout: 'lines' });
        const result = await addTextRows(projectId, read.rows.map((r) => ({ ...r, label })), { fileName: fileLabel(file) });
        out.added += result.added;
        out.skipped.push(...readSkips(read, file), ...result.skipped);
        out.notes.push(...read.notes.map((note) => `${fileLabel(file)}: ${note}`));
      }
      return out;
    },

    /** A text project's dataset entries of a project file: dataset.csv and TEXTS_FILE ([{name, bytes}]). */
    async projectFileEntries(projectId, classes) {
      const names = new Map(classes.map((c) => [c.id, c.name]));
      const samples = await texts.listTexts(projectId);
      const exact = samples.map((s) => ({ text: s.text, label: names.get(s.classId), source: s.source, added: s.added }));
      return [
        { name: 'dataset.csv', bytes: await datasetCsv(callPython, projectId) },
        { name: TEXTS_FILE, bytes: new TextEncoder().encode(JSON.stringify(exact)) },
      ];
    },

    /** A project file's TEXTS_FILE `bytes` as a new text project: {project, skipped: [{name, reason}]}. */
    async importProjectFile(bytes, description, label) {
      if (!bytes) throw new Error(`${label}: a text project file without ${TEXTS_FILE}`);
      const samples = JSON.parse(new TextDecoder().decode(bytes));
      const project = await createTextProject(description.name);
      const skipped = [];
      for (const name of description.classes) {
        const cls = await projects.addClass(project.id, name);
        const members = samples.filter((s) => s.label === name);
        const result = await texts.addTexts(project.id, cls.id, members.map((s) => s.text), {
          metadata: members.map((s) => ({ source: s.source, added: s.added })),
        });
        skipped.push(...result.skipped.map((s) => ({ name: `${name}/${s.name}`, reason: s.reason })));
      }
      return { project, skipped };
    },
  };
}
