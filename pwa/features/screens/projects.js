// The projects list: create (an image or a text project), open, rename, delete (confirmed), import a
// project file, an ImageFolder zip or a CSV of texts; storage used per project and in total, and
// whether the browser may evict it.
import * as tejas from '../../tejas.js';
import { serverOrigin } from '../jobs/results.js';
import {
  append, busy, confirmDialog, field, filePicker, formatBytes, h, percent, plural, projectUrl, promptDialog, showError, thumbnail, toast,
} from './dom.js';

export async function render(view) {
  const list = h('ul', { class: 'project-grid', 'aria-label': 'Projects' });
  const storage = h('p', { class: 'storage', id: 'storage-status' });
  const { field: nameField, input: name } = field('Project name', h('input', {
    type: 'text', name: 'name', required: true, maxlength: 100, placeholder: 'e.g. Ripe or not', autocomplete: 'off',
  }));
  const kindChoice = (value, label, hint) => h('label', { class: 'segment kind' },
    h('input', { type: 'radio', name: 'kind', value, checked: value === 'image' }),
    h('span', {}, h('strong', {}, label), h('small', {}, hint)));
  const kinds = h('fieldset', { class: 'segmented kinds' }, h('legend', {}, 'What it classifies'),
    kindChoice('image', 'Images', 'photos, drawings, camera'),
    kindChoice('text', 'Text', 'messages, reviews, CSV rows'));
  const create = h('form', { class: 'row wrap create-project', onsubmit: async (event) => {
    event.preventDefault();
    try {
      const project = await tejas.createProject(name.value, { kind: create.elements.kind.value });
      location.hash = projectUrl(project.id);
    } catch (error) {
      showError(error);
    }
  } }, nameField, kinds, h('button', { class: 'primary' }, 'Create project'));

  const importInput = filePicker('A project file or dataset zip', { accept: '.zip,application/zip', id: 'import-file' },
    ([file]) => busy(importButton, 'Importing…', () => importZip(file)));
  const importButton = h('button', { type: 'button', class: 'secondary', onclick: () => importInput.click() }, 'Import .zip…');
  const csvInput = filePicker('A CSV of texts and labels', { accept: '.csv,.tsv,text/csv,text/tab-separated-values', id: 'import-csv-project' },
    ([file]) => busy(csvButton, 'Importing…', () => importCsv(file)));
  const csvButton = h('button', { type: 'button', class: 'secondary', onclick: () => csvInput.click() }, 'Import .csv…');

  append(view, 
    h('div', { class: 'hero' },
      h('h1', {}, 'Your projects'),
      h('p', { class: 'muted' }, 'Teach your browser to tell images or texts apart: make a class per kind of thing, add examples, '
        + 'train, and download the model. Everything stays on this device.')),
    h('section', { class: 'card', 'aria-label': 'New project' }, create,
      h('div', { class: 'row wrap' }, importButton, importInput, csvButton, csvInput,
        h('small', { class: 'muted' }, 'A Tejas project file, a dataset zip with one folder per class, '
          + 'or a CSV of texts with a label column (a new text project).'))),
    storage, list);
  await Promise.all([fillList(list), fillStorage(storage)]);
}

async function importZip(file) {
  try {
    let result;
    try {
      result = await tejas.importProject(file);
      toast(`Imported "${result.project.name}" with ${plural(result.models, 'model')}.`);
    } catch (error) {
      if (!/not a Tejas project file/.test(error.message)) throw error;
      result = await tejas.importDatasetZip(file);
      toast(`Imported "${result.project.name}": ${plural(result.added, 'image')}`
        + `${result.skipped.length ? `, ${result.skipped.length} skipped (${result.skipped[0].name}: ${result.skipped[0].reason})` : ''}.`);
    }
    location.hash = projectUrl(result.project.id);
  } catch (error) {
    showError(error, `Could not import ${file.name}: `);
  }
}

async function importCsv(file) {
  try {
    const result = await tejas.importTextCsv(file, { name: file.name.replace(/\.(csv|tsv)$/i, '') });
    const skipped = result.skipped.length
      ? `, ${result.skipped.length} skipped (row ${result.skipped[0].row}: ${result.skipped[0].reason})` : '';
    toast(`Imported "${result.project.name}": ${plural(result.added, 'text')}${skipped}.`, { seconds: result.skipped.length ? 12 : 6 });
    location.hash = projectUrl(result.project.id);
  } catch (error) {
    showError(error, `Could not import ${file.name}: `);
  }
}

async function fillStorage(el) {
  const status = await tejas.storageStatus();
  const persist = h('button', { type: 'button', class: 'link', onclick: async () => {
    const granted = await tejas.requestPersistence();
    toast(granted ? 'Storage is now persistent.' : 'The browser declined; installing the app usually helps.');
    fillStorage(el);
  } }, 'Keep my data');
  el.replaceChildren(
    h('span', {}, `Storage: ${formatBytes(status.usage)} used of ${formatBytes(status.quota)} available. `),
    status.persisted
      ? h('span', { class: 'ok', id: 'persistence' }, 'Persistent: the browser will not clear it.')
      : h('span', { id: 'persistence' }, 'Not persistent: the browser may clear it when space runs low. ', persist));
}

async function projectFacts(project) {
  const [classes, samples, model, storage] = await Promise.all([
    tejas.listClasses(project.id), tejas.listSamples(project.id), tejas.currentModel(project.id), tejas.projectStorage(project.id)]);
  return { classes, samples, model, storage };
}

async function fillList(list) {
  const projects = (await tejas.listProjects()).sort((a, b) => (b.updated ?? '').localeCompare(a.updated ?? ''));
  if (!projects.length) {
    list.replaceWith(h('p', { class: 'empty' }, 'No projects yet. Create one above, or import a zip.'));
    return;
  }
  const cards = await Promise.all(projects.map(async (project) => card(project, await projectFacts(project), list)));
  list.replaceChildren(...cards);
}

function card(project, { classes, samples, model, storage }, list) {
  const text = project.kind === 'text';
  const items = text ? 'text' : 'image';
  // one image of each of the first classes, then more of them, up to 4
  const shown = text ? [] : [...classes.flatMap((c) => samples.filter((s) => s.classId === c.id).slice(0, 1)), ...samples]
    .filter((s, i, all) => all.indexOf(s) === i).slice(0, 4);
  const rename = async () => {
    const name = await promptDialog('Rename project', 'Project name', project.name);
    if (!name) return;
    try {
      await tejas.renameProject(project.id, name);
      await fillList(list);
    } catch (error) { showError(error); }
  };
  const remove = async () => {
    const ok = await confirmDialog(`Delete "${project.name}"?`,
      `Its ${plural(samples.length, items)}, ${plural(classes.length, 'class', 'classes')} and models will be removed from this device. This cannot be undone; export the project first to keep a copy.`);
    if (!ok) return;
    try {
      await tejas.deleteProject(project.id);
      toast(`Deleted "${project.name}".`);
      await fillList(list);
    } catch (error) { showError(error); }
  };
  return h('li', { class: 'project-card card', dataset: { projectId: project.id } },
    h('a', { class: `mosaic${text ? ' text-mosaic' : ''}`, href: projectUrl(project.id), tabindex: -1, 'aria-hidden': 'true' },
      text ? h('span', { class: 'placeholder' }, classes.length ? classes.slice(0, 4).map((c) => c.name).join(' · ') : 'No texts yet')
        : shown.length ? shown.map((s) => thumbnail(s.contentId, '')) : h('span', { class: 'placeholder' }, 'No images yet')),
    h('div', { class: 'project-body' },
      h('h2', {}, h('a', { href: projectUrl(project.id) }, project.name), text ? [' ', h('span', { class: 'badge kind-badge' }, 'Text')] : null),
      h('p', { class: 'muted' },
        `${plural(classes.length, 'class', 'classes')} · ${plural(samples.length, items)} · ${formatBytes(storage.total)}`),
      h('p', { class: 'muted project-size' }, `On this device: ${items}s ${formatBytes(storage.images)}, `
        + `cached features ${formatBytes(storage.embeddings)}, models ${formatBytes(storage.models)}`),
      h('p', { class: 'muted' }, model ? `Model: ${percent(model.metrics.accuracy)} validation accuracy${model.server ? ` (${serverOrigin(model)})` : ''}`
        : 'Not trained yet'),
      h('div', { class: 'row' },
        h('button', { type: 'button', class: 'secondary small', onclick: rename, 'aria-label': `Rename ${project.name}` }, 'Rename'),
        h('button', { type: 'button', class: 'danger-outline small', onclick: remove, 'aria-label': `Delete ${project.name}` }, 'Delete'))));
}
