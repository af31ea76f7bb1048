// Text projects' datasets as CSV: reading (the core's reader in the Python worker: encodings,
// delimiters, quoting, a header or none), adding the rows to a project by label, and writing the
// dataset back (the core's writer: RFC 4180, formula cells neutralised).
import { MESSAGE } from '../../protocol.js';
import * as projects from '../dataset/projects.js';
import { addTexts, listTexts } from '../dataset/texts.js';

/**
 * {rows: [{text, label, row}], skipped: [{row, reason}], notes, encoding, delimiter, header, classes}
 * of a CSV File (layout 'csv': a text and a label column) or a plain text file (layout 'lines': one
 * sample per non-empty line, label null). Rejects with the core's message for a file refused whole —
 * also for more distinct labels than `maxClasses` (the artifacts' manifest max_classes; the core's
 * default when undefined).
 */
export async function readTextCsv(callPython, file, { layout = 'csv', maxClasses } = {}) {
  if (!['csv', 'lines'].includes(layout)) throw new Error(`layout "${layout}": csv or lines`);
  const bytes = new Uint8Array(await file.arrayBuffer());
  return callPython(MESSAGE.READ_TEXT_CSV, { bytes, name: file.name || 'texts.csv', layout, maxClasses });
}

/** A label as addTextRows matches it to a class: without surrounding spaces, case ignored. */
const labelKey = (label) => String(label).trim().toLowerCase();

/**
 * Rejects, before anything is added, when the project's classes and the new `labels` together would be
 * more than `maxClasses` (the head the artifacts train serves no more); resolves when they fit or
 * `maxClasses` is undefined.
 */
export async function checkClassCount(projectId, labels, maxClasses, fileName) {
  if (!maxClasses) return;
  const names = new Set((await projects.listClasses(projectId)).map((c) => labelKey(c.name)));
  const before = names.size;
  for (const label of labels) names.add(labelKey(label));
  if (names.size > maxClasses) {
    const added = names.size - before;
    throw new Error(`${fileName}: ${added} new ${added === 1 ? 'label' : 'labels'} and the project's ${before} `
      + `${before === 1 ? 'class' : 'classes'} make ${names.size} classes; a project takes at most ${maxClasses} `
      + 'classes (merge or leave out some labels)');
  }
}

/**
 * Rows [{text, label, row}] into a text project, each into the class named by its label (made when
 * missing; names compared without case). @returns {Promise<{added: number, skipped: [{row, name, reason}]}>}
 */
export async function addTextRows(projectId, rows, { source = 'csv', fileName = '' } = {}) {
  const existing = new Map((await projects.listClasses(projectId)).map((c) => [c.name.toLowerCase(), c]));
  const byLabel = new Map();
  for (const row of rows) {
    const key = labelKey(row.label);
    if (!byLabel.has(key)) byLabel.set(key, { label: String(row.label).trim(), rows: [] });
    byLabel.get(key).rows.push(row);
  }
  let added = 0;
  const skipped = [];
  for (const [key, group] of byLabel) {
    let cls = existing.get(key);
    if (!cls) {
      try {
        cls = await projects.addClass(projectId, group.label);
      } catch (error) {
        // a label that cannot be a class name (projects.validateClassName says why): its rows are skipped
        for (const row of group.rows) skipped.push({ row: row.row, name: fileName, reason: `label "${group.label}": ${error.message}` });
        continue;
      }
      existing.set(key, cls);
    }
    const names = group.rows.map((row) => (fileName ? `${fileName} row ${row.row}` : `row ${row.row}`));
    const result = await addTexts(projectId, cls.id, group.rows.map((row) => row.text), { source, names });
    added += result.added.length;
    const rowOfName = new Map(names.map((name, i) => [name, group.rows[i].row]));
    skipped.push(...result.skipped.map((s) => ({ row: rowOfName.get(s.name) ?? null, name: s.name, reason: s.reason })));
  }
  return { added, skipped };
}

/** The project's texts as CSV bytes (header `text,label`), written by the core. */
export async function datasetCsv(callPython, projectId) {
  const classes = new Map((await projects.listClasses(projectId)).map((c) => [c.id, c.name]));
  const texts = await listTexts(projectId);
  texts.sort((a, b) => (a.added < b.added ? -1 : a.added > b.added ? 1 : 0));
  return callPython(MESSAGE.WRITE_TEXT_CSV, { rows: texts.map((s) => ({ text: s.text, label: classes.get(s.classId) })) });
}
