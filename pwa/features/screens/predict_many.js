// Predict → Many images: pick files, a folder or a zip; predictions stream in (progress, images/s,
// Cancel) into a table paged 50 rows at a time (thumbnail, file, top-k); filter by class, sort (least
// sure first), select rows → "Add to class" as corrections, then retrain; download CSV or JSON.
import * as tejas from '../../tejas.js';
import { countByClass, leastSure, SORT_CHOICES, viewRows } from '../predict/rows.js';
import { download, fileStem, filePicker, formatSeconds, h, percent, plural, showError, toast } from './dom.js';
import { deviceOptions, startTraining } from './train.js';

const PAGE_SIZE = 50;
const THUMBNAIL_PX = 64;
const REDRAW_MS = 250; // while predicting, the table redraws at most this often
// Hidden files and OS litter in a picked folder are not images anyone meant to predict.
const JUNK = /(^|\/)(\.[^/]*|thumbs\.db|desktop\.ini)$/i;

export async function render(view, { project, status }) {
  const numClasses = status.model.classes.length;
  const state = {
    source: null, rows: [], result: null, topK: Math.min(3, numClasses), filter: 'all', sort: 'least-sure', page: 0,
    selected: new Set(), controller: null, redraw: null,
  };
  const urls = new Map(); // row index → object URL of its thumbnail, for the rows on the page shown only
  view.dataset.manyState = 'idle';

  // Source and progress
  const run = (source) => predict(source).catch((error) => showError(error, 'Prediction failed: '));
  const filesInput = filePicker('Images to predict', { accept: 'image/*', multiple: true, id: 'many-files' }, run);
  const folderInput = filePicker('A folder of images to predict', { directory: true, multiple: true, id: 'many-folder' },
    (files) => run(files.filter((f) => !JUNK.test(f.webkitRelativePath || f.name))));
  const zipInput = filePicker('A zip of images to predict', { accept: '.zip,application/zip', id: 'many-zip' }, ([file]) => run(file));
  const topKSelect = h('select', { id: 'many-topk' },
    Array.from({ length: Math.min(5, numClasses) }, (_, i) => h('option', { value: i + 1, selected: i + 1 === state.topK }, String(i + 1))));
  topKSelect.addEventListener('change', () => { state.topK = Number(topKSelect.value); });
  const progress = h('progress', { id: 'many-progress', max: 1, value: 0, 'aria-label': 'Prediction progress', hidden: true });
  const statusLine = h('p', { id: 'many-status', role: 'status', 'aria-live': 'polite' });
  const cancel = h('button', { type: 'button', class: 'secondary', id: 'many-cancel', hidden: true, onclick: () => state.controller?.abort() }, 'Cancel');

  // Results
  const filterSelect = h('select', { id: 'many-filter' });
  filterSelect.addEventListener('change', () => { state.filter = filterSelect.value; state.page = 0; drawTable(); });
  const sortSelect = h('select', { id: 'many-sort' }, SORT_CHOICES.map(([value, label]) => h('option', { value }, label)));
  sortSelect.addEventListener('change', () => { state.sort = sortSelect.value; state.page = 0; drawTable(); });
  const leastCount = h('input', { type: 'number', id: 'many-least-count', min: 1, value: 20, inputmode: 'numeric' });
  const selectedText = h('span', { id: 'many-selected', 'aria-live': 'polite' });
  const classSelect = h('select', { id: 'many-class' });
  const addButton = h('button', { type: 'button', class: 'primary', id: 'many-add', disabled: true, onclick: () => addSelected().catch((error) => showError(error)) }, 'Add to class');
  const retrainStatus = h('div', { id: 'many-retrain', class: 'row wrap', role: 'status', 'aria-live': 'polite' });
  const pageAll = h('input', { type: 'checkbox', id: 'many-page-all', 'aria-label': 'Select all rows on this page' });
  const tbody = h('tbody');
  const pagerText = h('span', { id: 'many-page' });
  const previous = h('button', { type: 'button', class: 'secondary small', onclick: () => { state.page -= 1; drawTable(); } }, 'Previous page');
  const next = h('button', { type: 'button', class: 'secondary small', onclick: () => { state.page += 1; drawTable(); } }, 'Next page');
  const csvButton = h('button', { type: 'button', class: 'secondary', id: 'many-csv', onclick: () => save('csv') }, 'Download CSV');
  const jsonButton = h('button', { type: 'button', class: 'secondary', id: 'many-json', onclick: () => save('json') }, 'Download JSON');
  const results = h('section', { class: 'card', id: 'many-results', 'aria-labelledby': 'many-results-title', hidden: true },
    h('h2', { id: 'many-results-title' }, 'Results'),
    h('div', { class: 'row wrap many-tools' },
      h('label', { for: 'many-filter' }, 'Show'), filterSelect,
      h('label', { for: 'many-sort' }, 'Sort'), sortSelect),
    h('div', { class: 'row wrap many-tools' },
      h('label', { for: 'many-least-count' }, 'How many'), leastCount,
      h('button', { type: 'button', class: 'secondary small', id: 'many-least', onclick: selectLeastSure }, 'Select least sure'),
      h('button', { type: 'button', class: 'secondary small', id: 'many-select-shown', onclick: selectShown }, 'Select all shown'),
      h('button', { type: 'button', class: 'link', onclick: () => { state.selected.clear(); drawTable(); } }, 'Clear selection'),
      selectedText),
    h('div', { class: 'row wrap many-tools' },
      h('label', { for: 'many-class' }, 'Add selected to class'), classSelect, addButton),
    retrainStatus,
    h('div', { class: 'table-scroll many-scroll', tabindex: 0, role: 'region', 'aria-label': 'Predictions table' },
      h('table', { class: 'many-table', id: 'many-table' },
        h('caption', { class: 'visually-hidden' }, 'Predictions, one row per image'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, pageAll), h('th', { scope: 'col' }, 'Image'), h('th', { scope: 'col' }, 'File'),
          h('th', { scope: 'col' }, 'Prediction'), h('th', { scope: 'col', class: 'num' }, 'Confidence'),
          h('th', { scope: 'col' }, 'Other classes'))),
        tbody)),
    h('div', { class: 'row wrap pager' }, previous, pagerText, next),
    h('div', { class: 'row wrap' }, csvButton, jsonButton));

  pageAll.addEventListener('change', () => {
    for (const row of pageRows()) {
      if (row.error) continue;
      if (pageAll.checked) state.selected.add(row.index); else state.selected.delete(row.index);
    }
    drawTable();
  });
  tbody.addEventListener('change', (event) => {
    const index = Number(event.target.closest('tr')?.dataset.index);
    if (event.target.checked) state.selected.add(index); else state.selected.delete(index);
    drawSelection();
  });

  const shownRows = () => viewRows(state.rows, state);
  function pageRows() {
    return shownRows().slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  }

  function selectLeastSure() {
    const n = Math.max(1, Math.floor(Number(leastCount.value) || 0));
    state.selected = new Set(leastSure(shownRows(), n).map((r) => r.index));
    state.sort = sortSelect.value = 'least-sure';
    state.page = 0;
    drawTable();
  }

  function selectShown() {
    for (const row of shownRows()) if (!row.error) state.selected.add(row.index);
    drawTable();
  }

  function drawSelection() {
    const n = state.selected.size;
    selectedText.textContent = `${plural(n, 'image')} selected`;
    addButton.disabled = n === 0 || !classSelect.value;
    addButton.textContent = n ? `Add ${plural(n, 'image')} to class` : 'Add to class';
    const rows = pageRows().filter((r) => !r.error);
    pageAll.checked = rows.length > 0 && rows.every((r) => state.selected.has(r.index));
  }

  function drawFilter() {
    const counts = countByClass(state.rows);
    const errors = state.rows.filter((r) => r.error).length;
    const options = [['all', `All (${state.rows.length})`],
      ...status.model.classes.map((c) => [c.name, `${c.name} (${counts.get(c.name) ?? 0})`]),
      ['errors', `Could not read (${errors})`]];
    filterSelect.replaceChildren(...options.map(([value, label]) => h('option', { value, selected: value === state.filter }, label)));
  }

  function drawTable() {
    clearTimeout(state.redraw);
    state.redraw = null;
    const shown = shownRows();
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    state.page = Math.max(0, Math.min(state.page, pages - 1));
    const rows = shown.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
    // thumbnails: object URLs for this page's rows only, made now and revoked when they leave the page
    const keep = new Set(rows.map((r) => r.index));
    for (const [index, url] of urls) if (!keep.has(index)) { URL.revokeObjectURL(url); urls.delete(index); }
    tbody.replaceChildren(...rows.map(rowElement));
    const first = shown.length ? state.page * PAGE_SIZE + 1 : 0;
    pagerText.textContent = `Rows ${first}–${state.page * PAGE_SIZE + rows.length} of ${shown.length} · page ${state.page + 1} of ${pages}`;
    previous.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
    drawFilter();
    drawSelection();
  }

  function rowElement(row) {
    if (row.thumbnail && !urls.has(row.index)) urls.set(row.index, URL.createObjectURL(row.thumbnail));
    const best = row.top[0];
    return h('tr', { dataset: { index: row.index }, class: row.error ? 'failed' : null },
      h('td', {}, h('input', {
        type: 'checkbox', checked: state.selected.has(row.index), disabled: Boolean(row.error), 'aria-label': `Select ${row.file}`,
      })),
      h('td', { class: 'thumb-cell' }, urls.has(row.index)
        ? h('img', { src: urls.get(row.index), alt: '', width: 48, height: 48, decoding: 'async' }) : null),
      h('th', { scope: 'row', class: 'file' }, row.file),
      h('td', {}, row.error ? h('span', { class: 'error-text' }, row.error) : h('strong', {}, best.name),
        row.addedTo ? h('small', { class: 'added' }, ` → added to ${row.addedTo}`) : null),
      h('td', { class: 'num' }, best ? percent(best.probability, 1) : ''),
      h('td', { class: 'others' }, row.top.slice(1).map((t) => `${t.name} ${percent(t.probability, 1)}`).join(' · ')));
  }

  const scheduleDraw = () => { state.redraw ??= setTimeout(drawTable, REDRAW_MS); };

  const showProgress = (p) => {
    progress.max = Math.max(1, p.total);
    progress.value = p.done;
    statusLine.textContent = `Predicting… ${p.done} of ${p.total} · ${p.imagesPerSecond.toFixed(1)} images/s`
      + (p.failed ? ` · ${p.failed} could not be read` : '');
  };

  async function predict(source) {
    state.controller?.abort();
    const controller = new AbortController();
    Object.assign(state, { source, rows: [], result: null, page: 0, selected: new Set(), controller });
    const topK = state.topK;
    retrainStatus.replaceChildren();
    results.hidden = false;
    progress.hidden = cancel.hidden = false;
    progress.removeAttribute('value'); // indeterminate while a zip is opened
    statusLine.textContent = 'Reading…';
    view.dataset.manyState = 'running';
    drawTable();
    try {
      state.result = await tejas.predictMany(project.id, source, {
        topK, thumbnailSize: THUMBNAIL_PX, signal: controller.signal, onProgress: showProgress,
        onResult: (rows) => { if (state.controller === controller) { state.rows.push(...rows); scheduleDraw(); } },
      });
      const r = state.result;
      statusLine.textContent = `Predicted ${plural(r.total, 'image')} in ${formatSeconds(r.seconds)} (${r.imagesPerSecond.toFixed(1)} images/s)`
        + (r.failed ? `; ${r.failed} could not be read.` : '.');
      view.dataset.manyState = 'done';
    } catch (error) {
      if (state.controller !== controller) return; // a newer run replaced this one
      const cancelled = error.name === 'AbortError';
      statusLine.textContent = cancelled
        ? `Cancelled after ${plural(state.rows.length, 'image')}.`
        : `Prediction failed: ${error.message}`;
      view.dataset.manyState = cancelled ? 'cancelled' : 'failed';
      if (!cancelled) showError(error, 'Prediction failed: ');
    } finally {
      if (state.controller === controller) {
        state.controller = null;
        progress.hidden = cancel.hidden = true;
        drawTable();
      }
    }
  }

  async function addSelected() {
    const classId = classSelect.value;
    const className = classSelect.selectedOptions[0]?.textContent;
    const rows = state.rows.filter((r) => state.selected.has(r.index));
    if (!rows.length || !classId) return;
    addButton.disabled = true;
    const note = toast(`Adding ${plural(rows.length, 'image')} to "${className}"…`, { seconds: 600 });
    let result;
    try {
      result = await tejas.addPredictionsToClass(project.id, classId, state.source, rows);
    } finally {
      note.remove();
    }
    const failed = new Set(result.failed.map((f) => f.file));
    for (const row of rows) if (!failed.has(row.file)) row.addedTo = className;
    state.selected.clear();
    drawTable();
    const done = result.added + result.moved;
    toast(`Added ${plural(done, 'image')} to "${className}" as corrections${result.moved ? ` (${result.moved} moved from another class)` : ''}.`);
    if (result.failed.length) showError(`${result.failed[0].file}: ${result.failed[0].message}`, `${result.failed.length} not added. `);
    view.dataset.added = String(done);
    retrainStatus.replaceChildren(h('span', {}, `${plural(done, 'correction')} added to "${className}".`),
      h('button', { type: 'button', class: 'primary small', id: 'many-retrain-now', onclick: retrain }, 'Retrain now'));
  }

  function retrain() {
    const training = startTraining(project.id, deviceOptions(status.model));
    const follow = (r) => {
      if (r.status === 'running') {
        retrainStatus.textContent = r.progress?.stage === 'training'
          ? `Retraining: epoch ${r.progress.epoch} of ${r.options.epochs}…` : 'Retraining: reading images…';
        return;
      }
      r.listeners.delete(follow);
      if (r.status !== 'done') {
        retrainStatus.textContent = r.status === 'cancelled' ? 'Retraining cancelled.' : `Retraining failed: ${r.error.message}`;
        return;
      }
      status.model = r.model;
      retrainStatus.replaceChildren(h('span', {}, `Retrained: ${percent(r.model.metrics.accuracy)} validation accuracy.`),
        h('button', { type: 'button', class: 'secondary small', onclick: () => run(state.source) }, 'Predict these again'));
    };
    training.listeners.add(follow);
    follow(training);
  }

  function save(kind) {
    const r = state.result ?? { model: null, topK: state.topK, rows: state.rows };
    if (!r.rows.length) { showError('Nothing predicted yet.'); return; }
    const text = kind === 'csv' ? tejas.predictionsCsv(r) : tejas.predictionsJson(r);
    const type = kind === 'csv' ? 'text/csv;charset=utf-8' : 'application/json';
    download(new Blob([text], { type }), `${fileStem(project.name)}-predictions.${kind}`);
  }

  const classes = await tejas.listClasses(project.id);
  classSelect.replaceChildren(...classes.map((c) => h('option', { value: c.id }, c.name)));

  view.append(h('section', { class: 'card', 'aria-labelledby': 'many-source-title' },
    h('h2', { id: 'many-source-title' }, 'Images'),
    h('p', { class: 'muted' }, 'Predict a whole set at once: files, a folder or a zip. Everything stays on this device.'),
    h('div', { class: 'row wrap' },
      h('button', { type: 'button', class: 'primary', onclick: () => filesInput.click() }, 'Choose images…'), filesInput,
      h('button', { type: 'button', class: 'secondary', onclick: () => folderInput.click() }, 'Choose folder…'), folderInput,
      h('button', { type: 'button', class: 'secondary', onclick: () => zipInput.click() }, 'Choose zip…'), zipInput,
      h('label', { for: 'many-topk' }, 'Classes per image'), topKSelect),
    h('div', { class: 'row wrap many-progress' }, progress, cancel),
    statusLine),
  results);
  return () => {
    state.controller?.abort();
    clearTimeout(state.redraw);
    for (const url of urls.values()) URL.revokeObjectURL(url);
  };
}
