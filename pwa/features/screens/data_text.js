// The Data screen of a text project: classes and their texts. Import a CSV (a preview first: rows read,
// encoding, delimiter and header notes, skipped rows with their row numbers and reasons, counts per
// class) or one .txt file per class; type or paste texts into a class, one per line; each class lists
// its texts with edit, and selected texts move to another class or are deleted (with undo).
import * as tejas from '../../tejas.js';
import { classActions, classCard, classForm, fillSelection, fillTarget, fillWarnings, targetSelect } from './data.js';
import { isBlankText } from '../text/rules.js';
import { preparingStatus } from './preparing.js';
import {
  append, busy, download, field, filePicker, fileStem, h, plural, projectUrl, showError, textDialog, toast,
} from './dom.js';

const SHOWN = 20; // texts per class before "show more"
const MORE = 100; // texts added by each "show more"
const LISTED_SKIPS = 200; // skipped rows listed in a preview (the count says how many in all)

export async function render(view, { project }) {
  const state = { project, classes: [], samples: [], selected: new Set(), shown: new Map(), filter: '' };
  const classesBox = h('div', { class: 'classes' });
  const warnings = h('div', { class: 'warnings', 'aria-live': 'polite' });
  const summary = h('p', { class: 'muted', id: 'data-summary' });
  const selectionBar = h('div', { class: 'selection-bar', hidden: true, role: 'region', 'aria-label': 'Selected texts' });

  const refresh = async () => {
    [state.classes, state.samples] = await Promise.all([tejas.listClasses(project.id), tejas.listTexts(project.id)]);
    for (const id of state.selected) if (!state.samples.some((s) => s.contentId === id)) state.selected.delete(id);
    summary.textContent = `${plural(state.classes.length, 'class', 'classes')} · ${plural(state.samples.length, 'text')}`;
    fillTarget(target, state.classes, project.id);
    fillWarnings(warnings, state, 'text');
    fillClasses(classesBox, state, actions);
    fillSelection(selectionBar, state, actions, 'text');
    view.dataset.texts = String(state.samples.length);
  };

  const actions = {
    refresh, ...classActions(refresh, 'text'),
    edit: async (sample) => {
      const text = await textDialog('Edit text', 'Text', sample.text);
      if (text === null || text === sample.text) return;
      try {
        await tejas.editText(project.id, sample.contentId, text);
        toast('Text saved.');
      } catch (error) { showError(error); }
      await refresh();
    },
    deleteSelected: async () => {
      const ids = [...state.selected];
      try {
        const deleted = await tejas.deleteSamples(project.id, ids);
        state.selected.clear();
        toast(`Deleted ${plural(deleted.length, 'text')}.`, { action: { label: 'Undo', run: async () => {
          try { await tejas.restoreSamples(project.id, deleted); } catch (error) { showError(error); }
          await refresh();
        } } });
      } catch (error) { showError(error); }
      await refresh();
    },
    moveSelected: async (classId) => {
      const ids = [...state.selected];
      try {
        await tejas.moveSamples(project.id, ids, classId);
        state.selected.clear();
        toast(`Moved ${plural(ids.length, 'text')} to "${state.classes.find((c) => c.id === classId)?.name}".`);
      } catch (error) { showError(error); }
      await refresh();
    },
  };

  const addClassForm = classForm(project.id, refresh, { placeholder: 'e.g. spam' });

  // Import: a CSV (previewed, then imported) or one .txt file per class
  const preview = h('div', { class: 'panel csv-preview', id: 'csv-preview', hidden: true, 'aria-live': 'polite' });
  const csvInput = filePicker('A CSV file of texts and labels', { accept: '.csv,.tsv,.txt,text/csv,text/tab-separated-values', id: 'import-csv' },
    ([file]) => busy(csvButton, 'Reading…', () => previewCsv(file)));
  const csvButton = h('button', { type: 'button', class: 'secondary', onclick: () => csvInput.click() }, 'CSV file…');
  const txtInput = filePicker('Text files, one per class', { accept: '.txt,text/plain', multiple: true, id: 'import-txt' },
    (files) => busy(txtButton, 'Adding…', () => addFiles(files)));
  const txtButton = h('button', { type: 'button', class: 'secondary', onclick: () => txtInput.click() }, 'One .txt file per class…');

  const previewCsv = async (file) => {
    let read;
    try {
      read = await tejas.readTextCsv(file);
    } catch (error) {
      preview.hidden = true;
      showError(error, `${file.name}: `);
      return;
    }
    const importButton = h('button', { type: 'button', class: 'primary', id: 'csv-import', disabled: !read.rows.length },
      `Import ${count(read.rows.length, 'row')}`);
    const result = h('div', { id: 'csv-result', role: 'status' });
    importButton.addEventListener('click', () => busy(importButton, 'Importing…', async () => {
      try {
        const added = await tejas.addTextCsv(project.id, file);
        result.replaceChildren(importReport(added, file.name));
        importButton.remove();
        cancel.textContent = 'Close';
        view.dataset.imported = String(added.added?.length ?? added.added);
      } catch (error) {
        showError(error, `${file.name}: `);
      }
      await refresh();
    }));
    const cancel = h('button', { type: 'button', class: 'secondary', id: 'csv-cancel', onclick: () => { preview.hidden = true; preview.replaceChildren(); } }, 'Cancel');
    preview.replaceChildren(csvSummary(file.name, read), h('div', { class: 'row wrap' }, importButton, cancel), result);
    preview.hidden = false;
    preview.querySelector('h3').focus();
  };

  const addFiles = async (files) => {
    try {
      const result = await tejas.addTextFiles(project.id, files);
      toastReport(result, `${plural(files.length, 'file')}`);
    } catch (error) {
      showError(error);
    }
    await refresh();
  };

  // Type or paste texts into a class
  const target = targetSelect(project.id, { id: 'text-class' });
  const { field: typedField, input: typed } = field('Texts, one per line', h('textarea', {
    id: 'text-input', rows: 4, class: 'text-input', placeholder: 'Type or paste texts here: each line becomes one sample.',
  }));
  const typedForm = h('form', { class: 'stack', onsubmit: async (event) => {
    event.preventDefault();
    const lines = typed.value.split(/\r\n|\r|\n/).filter((line) => !isBlankText(line));
    if (!target.value) { showError('Add a class first: texts go into a class.'); return; }
    if (!lines.length) { showError('Type at least one text (one per line).'); return; }
    try {
      const result = await tejas.addTexts(project.id, target.value, lines, { source: 'typed' });
      if (result.added.length) typed.value = '';
      toastReport({ added: result.added.length, skipped: result.skipped });
    } catch (error) {
      showError(error);
    }
    await refresh();
  } },
  h('div', { class: 'row wrap' }, h('label', { for: 'text-class' }, 'Add to class'), target),
  typedField,
  h('div', { class: 'row wrap' }, h('button', { class: 'primary', id: 'add-texts' }, 'Add texts')));
  typed.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) typedForm.requestSubmit();
  });

  const filter = h('input', { type: 'search', id: 'text-filter', placeholder: 'Words in the text', autocomplete: 'off' });
  filter.addEventListener('input', () => {
    state.filter = filter.value.trim().toLowerCase();
    fillClasses(classesBox, state, actions);
  });

  const csvDownload = h('button', { type: 'button', class: 'secondary', id: 'download-csv' }, 'Download dataset as CSV');
  csvDownload.addEventListener('click', () => busy(csvDownload, 'Preparing…', async () => {
    try {
      download(await tejas.exportDatasetCsv(project.id), `${fileStem(project.name)}.csv`);
    } catch (error) { showError(error, 'Could not make the CSV: '); }
  }));

  append(view,
    h('div', { class: 'title-row' }, h('h1', {}, 'Data'), summary),
    h('section', { class: 'card' }, addClassForm),
    h('section', { class: 'card', 'aria-labelledby': 'import-title' },
      h('h2', { id: 'import-title' }, 'Import texts'),
      h('div', { class: 'row wrap' }, csvButton, csvInput, txtButton, txtInput),
      h('small', { class: 'hint' }, 'A CSV with a text column and a label column (a header row is optional; commas, semicolons or tabs); '
        + 'or .txt files named after their class, one text per line. A preview shows what will be imported.'),
      preview),
    h('section', { class: 'card', 'aria-labelledby': 'type-title' },
      h('h2', { id: 'type-title' }, 'Type or paste texts'), typedForm),
    preparingStatus(project.id, { noun: 'text' }),
    warnings,
    h('div', { class: 'row wrap text-tools' }, field('Find', filter).field, h('span', { class: 'spacer' }), csvDownload),
    classesBox, selectionBar,
    h('p', { class: 'next' }, h('a', { href: projectUrl(project.id, 'train'), class: 'button primary' }, 'Next: train →')));
  await refresh();
  return null;
}

/** The preview of a CSV before it is imported: what was read, notes, skipped rows, counts per class. */
function csvSummary(name, read) {
  const classes = Object.entries(read.classes ?? {}).sort((a, b) => b[1] - a[1]);
  const facts = [
    ['Rows read', `${read.rows.length.toLocaleString('en')} texts`],
    ['Encoding', read.encoding],
    ['Delimiter', delimiterName(read.delimiter)],
    ['Header', read.header ? (Array.isArray(read.header) ? read.header.join(', ') : String(read.header)) : 'none (the first row is data)'],
  ].filter(([, value]) => value !== undefined && value !== null && value !== '');
  return h('div', { class: 'stack' },
    h('h3', { tabindex: -1 }, `Preview of ${name}`),
    h('dl', { class: 'facts', id: 'csv-facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    read.notes?.length ? h('ul', { class: 'notes', id: 'csv-notes' }, read.notes.map((note) => h('li', {}, note))) : null,
    h('div', {},
      h('h4', {}, `Texts per class (${plural(classes.length, 'class', 'classes')})`),
      h('table', { class: 'metrics csv-classes', id: 'csv-classes' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Class'), h('th', { scope: 'col' }, 'Texts'))),
        h('tbody', {}, classes.map(([label, count]) => h('tr', {}, h('th', { scope: 'row' }, label), h('td', {}, count.toLocaleString('en'))))))),
    read.skipped.length
      ? h('details', { class: 'skipped', id: 'csv-skipped', open: read.skipped.length <= 20 },
        h('summary', {}, `${plural(read.skipped.length, 'row')} will be skipped`),
        h('ul', { class: 'error-list' }, read.skipped.slice(0, LISTED_SKIPS).map((s) => h('li', { dataset: { row: s.row } }, `Row ${s.row}: ${s.reason}`))),
        read.skipped.length > LISTED_SKIPS ? h('p', { class: 'muted' }, `… and ${read.skipped.length - LISTED_SKIPS} more.`) : null)
      : h('p', { class: 'ok' }, 'No row will be skipped.'));
}

const delimiterName = (d) => ({ ',': 'comma (,)', ';': 'semicolon (;)', '\t': 'tab', '|': 'bar (|)' }[d] ?? (d ? `"${d}"` : null));

/** What an import added and skipped (the rows skipped now: already in the project, for instance). */
function importReport(result, name) {
  const added = result.added?.length ?? result.added;
  return h('div', { class: 'stack' },
    h('p', { class: 'ok' }, `Imported ${count(added, 'text')} from ${name}.`),
    result.skipped?.length ? h('details', { id: 'csv-import-skipped' }, h('summary', {}, `${plural(result.skipped.length, 'row')} skipped`),
      h('ul', { class: 'error-list' }, result.skipped.slice(0, LISTED_SKIPS).map((s) => h('li', {}, `${skipWhere(s)}: ${s.reason}`)))) : null,
    result.notes?.length ? h('ul', { class: 'notes' }, result.notes.map((note) => h('li', {}, note))) : null);
}

/** plural() with thousands separated: 4,534 texts. */
const count = (n, word) => `${n.toLocaleString('en')} ${n === 1 ? word : `${word}s`}`;

const skipWhere = (s) => (s.row ? `${s.name ? `${s.name}, ` : ''}row ${s.row}` : s.name);

function toastReport(result, what = null) {
  const added = result.added?.length ?? result.added ?? 0;
  const skipped = result.skipped ?? [];
  const parts = [`Added ${plural(added, 'text')}${what ? ` from ${what}` : ''}.`];
  if (skipped.length) {
    const shown = skipped.slice(0, 3).map((s) => `${skipWhere(s)}: ${s.reason}`).join('; ');
    parts.push(`Skipped ${skipped.length}: ${shown}${skipped.length > 3 ? '; …' : ''}`);
  }
  toast(parts.join(' '), { kind: skipped.length && !added ? 'error' : 'info', seconds: skipped.length ? 12 : 5 });
}

function fillClasses(box, state, actions) {
  if (!state.classes.length) {
    box.replaceChildren(h('p', { class: 'empty' }, 'Start by adding a class for each kind of text to recognise, e.g. “spam” and “not spam”, or import a CSV.'));
    return;
  }
  const filter = state.filter;
  box.replaceChildren(...state.classes.map((cls) => {
    const members = state.samples.filter((s) => s.classId === cls.id).sort((a, b) => (a.added < b.added ? -1 : a.added > b.added ? 1 : 0));
    const matching = filter ? members.filter((s) => s.text.toLowerCase().includes(filter)) : members;
    const limit = state.shown.get(cls.id) ?? SHOWN;
    const shown = matching.slice(0, limit);
    return classCard(cls, members.length, 'text', actions, null,
      filter ? h('p', { class: 'muted' }, `${plural(matching.length, 'text')} of ${members.length} match.`) : null,
      shown.length
        ? h('ul', { class: 'text-list', 'aria-label': `Texts of ${cls.name}` }, shown.map((s) => textItem(s, state, actions)))
        : h('p', { class: 'muted drop-hint' }, filter ? 'No text of this class matches.' : 'No texts yet: import a CSV, or type some above.'),
      matching.length > shown.length ? h('button', { type: 'button', class: 'link', onclick: () => {
        state.shown.set(cls.id, limit + MORE);
        fillClasses(box, state, actions);
      } }, `Show ${Math.min(MORE, matching.length - shown.length)} more (${matching.length - shown.length} not shown)`) : null);
  }));
}

function textItem(sample, state, actions) {
  const short = sample.text.length > 40 ? `${sample.text.slice(0, 40)}…` : sample.text;
  return h('li', { class: 'text-item', dataset: { contentId: sample.contentId } },
    h('input', { type: 'checkbox', checked: state.selected.has(sample.contentId), 'aria-label': `Select “${short}”`,
      onchange: (event) => {
        if (event.target.checked) state.selected.add(sample.contentId); else state.selected.delete(sample.contentId);
        fillSelection(document.querySelector('.selection-bar'), state, actions, 'text');
      } }),
    h('span', { class: 'text' }, sample.text),
    sample.source === 'correction' ? h('span', { class: 'badge', title: 'A corrected prediction: always trained on' }, 'correction') : null,
    h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit “${short}”`, onclick: () => actions.edit(sample) }, 'Edit'));
}
