// Evaluation of the current model on its held-out images or texts: accuracy, per-class accuracy /
// precision / recall / F1, and a confusion matrix whose cells open the images (or list the texts) in
// them, each with relabel and delete.
import * as tejas from '../../tejas.js';
import { append, h, percent, plural, projectUrl, showError, thumbnail, toast } from './dom.js';
import { artifactsChangedNotice } from './train.js';

export async function render(view, { project }) {
  append(view, h('div', { class: 'title-row' }, h('h1', {}, 'Evaluate')));
  const status = await tejas.modelStatus(project.id);
  if (!status.model) {
    append(view, h('section', { class: 'card' }, h('p', {}, 'No model yet: train one, and its mistakes show up here.'),
      h('a', { class: 'button primary', href: projectUrl(project.id, 'train') }, 'Go to Train')));
    return null;
  }
  const model = status.model;
  const m = model.metrics;
  const text = project.kind === 'text';
  const noun = text ? 'text' : 'image';
  const staleBox = h('div', { id: 'stale-box' });
  const setStale = (stale) => staleBox.replaceChildren(stale ? h('p', { class: 'warning', id: 'stale', role: 'status' },
    h('strong', {}, 'Model is stale: '), 'the data changed since it was trained. ',
    h('a', { href: projectUrl(project.id, 'train') }, 'Train again'), ' to update these numbers.') : '');
  setStale(status.stale);
  const artifactsNotice = artifactsChangedNotice(project, status);
  const refreshStale = async () => setStale((await tejas.modelStatus(project.id)).stale);
  const cellPanel = h('section', { class: 'card', id: 'cell-images', hidden: true, 'aria-live': 'polite', 'aria-labelledby': 'cell-title' });
  const samples = new Map((await (text ? tejas.listTexts(project.id) : tejas.listSamples(project.id))).map((s) => [s.contentId, s]));
  const currentClasses = await tejas.listClasses(project.id);

  const openCell = (t, p) => {
    const ids = m.cells[`${t},${p}`] ?? [];
    const truth = model.classes[t].name;
    const predicted = model.classes[p].name;
    const title = t === p ? `${truth}: predicted right` : `${truth} predicted as ${predicted}`;
    cellPanel.replaceChildren(
      h('h2', { id: 'cell-title', tabindex: -1 }, `${title} (${plural(ids.length, noun)})`),
      ids.length ? h('ul', { class: text ? 'cell-texts' : 'cell-grid' }, ids.map((id) => cellItem(id))) : h('p', { class: 'muted' }, `No ${noun}s in this cell.`));
    cellPanel.hidden = false;
    cellPanel.dataset.cell = `${t},${p}`;
    cellPanel.querySelector('h2').focus();
  };

  const cellItem = (contentId) => {
    const sample = samples.get(contentId);
    if (!sample) return h('li', { class: 'cell-item gone', dataset: { contentId } }, h('p', { class: 'muted' }, 'No longer in the dataset.'));
    const label = currentClasses.find((c) => c.id === sample.classId)?.name ?? '?';
    const what = text ? `“${sample.text.length > 40 ? `${sample.text.slice(0, 40)}…` : sample.text}”` : sample.name;
    const select = h('select', { 'aria-label': `New class for ${what}` },
      currentClasses.map((c) => h('option', { value: c.id, selected: c.id === sample.classId }, c.name)));
    const item = h('li', { class: 'cell-item', dataset: { contentId } },
      text ? h('p', { class: 'cell-text' }, sample.text) : [thumbnail(contentId, `${sample.name} (labelled ${label})`),
        h('p', { class: 'name', title: sample.name }, sample.name)],
      h('div', { class: 'row wrap' }, select,
        h('button', { type: 'button', class: 'secondary small', onclick: async () => {
          if (select.value === sample.classId) return;
          try {
            await tejas.moveSamples(project.id, [contentId], select.value);
            sample.classId = select.value;
            const name = currentClasses.find((c) => c.id === select.value)?.name;
            item.querySelector('.status').textContent = `Relabelled as "${name}".`;
            toast(`Relabelled ${what} as "${name}".`);
            await refreshStale();
          } catch (error) { showError(error); }
        } }, 'Relabel'),
        h('button', { type: 'button', class: 'danger-outline small', 'aria-label': `Delete ${what}`, onclick: async () => {
          try {
            const deleted = await tejas.deleteSamples(project.id, [contentId]);
            samples.delete(contentId);
            item.replaceChildren(h('p', { class: 'muted status' }, 'Deleted.'));
            toast(`Deleted ${what}.`, { action: { label: 'Undo', run: async () => {
              await tejas.restoreSamples(project.id, deleted);
              samples.set(contentId, sample);
              item.replaceWith(cellItem(contentId));
              await refreshStale();
            } } });
            await refreshStale();
          } catch (error) { showError(error); }
        } }, 'Delete')),
      h('p', { class: 'status muted', role: 'status' }));
    return item;
  };

  const n = model.classes.length;
  const max = Math.max(1, ...m.confusionMatrix.flat());
  const matrix = h('table', { class: 'confusion', id: 'confusion' },
    h('caption', {}, `Rows: the true class. Columns: what the model predicted. Select a number to see those ${noun}s.`),
    h('thead', {}, h('tr', {}, h('td', { class: 'corner' }), model.classes.map((c) => h('th', { scope: 'col' }, h('span', {}, c.name))))),
    h('tbody', {}, model.classes.map((c, t) => h('tr', {}, h('th', { scope: 'row' }, c.name),
      Array.from({ length: n }, (_, p) => {
        const count = m.confusionMatrix[t][p];
        const kind = t === p ? 'right' : count ? 'wrong' : 'empty';
        return h('td', { class: kind, style: `--share: ${(count / max).toFixed(3)}` },
          h('button', { type: 'button', dataset: { t, p }, disabled: count === 0,
            'aria-label': `${count} ${c.name} ${noun}${count === 1 ? '' : 's'} predicted as ${model.classes[p].name}`,
            onclick: () => openCell(t, p) }, String(count)));
      })))));

  append(view, 
    artifactsNotice, staleBox,
    h('section', { class: 'card', 'aria-labelledby': 'overall-title' },
      h('h2', { id: 'overall-title' }, 'Overall'),
      h('p', { class: 'big-number' }, percent(m.accuracy), ' accuracy'),
      h('p', {}, 'Macro F1 ', h('strong', { id: 'macro-f1', dataset: { value: m.macro.f1 } }, percent(m.macro.f1, 1))),
      h('p', { class: 'muted' }, `On ${plural(m.count, `held-out ${noun}`)} the model did not train on `
        + `(${new Date(model.created).toLocaleString()}). Macro precision ${percent(m.macro.precision)}, recall ${percent(m.macro.recall)}.`)),
    h('section', { class: 'card', 'aria-labelledby': 'classes-title' },
      h('h2', { id: 'classes-title' }, 'Per class'),
      h('div', { class: 'table-scroll', tabindex: 0, role: 'region', 'aria-label': 'Scrollable table' }, h('table', { class: 'metrics', id: 'per-class' },
        h('thead', {}, h('tr', {}, ['Class', 'Accuracy (recall)', 'Precision', 'F1', text ? 'Texts' : 'Images'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, m.perClass.map((r) => h('tr', {}, h('th', { scope: 'row' }, r.class),
          h('td', {}, percent(r.recall)), h('td', {}, percent(r.precision)), h('td', {}, percent(r.f1)), h('td', {}, String(r.support))))))),
      h('p', { class: 'hint' }, `Accuracy (recall): of the ${noun}s of a class, the share predicted as that class. `
        + `Precision: of the ${noun}s predicted as a class, the share that really are.`)),
    h('section', { class: 'card', 'aria-labelledby': 'matrix-title' },
      h('h2', { id: 'matrix-title' }, 'Confusion matrix'),
      h('div', { class: 'table-scroll', tabindex: 0, role: 'region', 'aria-label': 'Scrollable table' }, matrix)),
    cellPanel);
  return null;
}
