// The training panel: sensible defaults, an "advanced" section, a live chart of loss and accuracy per
// epoch (uPlot), progress with ETA, cancel. A run carries on while the user visits other screens.
import * as tejas from '../../tejas.js';
import { append, field, formatSeconds, h, percent, plural, projectUrl, showError, toast } from './dom.js';
import { createChart, historyTable } from './chart.js';
import { serverTrainingCard } from './server_train.js';
import { serverOrigin } from '../jobs/results.js';
import { modesFor } from '../catalog.js';

export const DEFAULTS = { mode: 'head', epochs: 20, learningRate: 0.003, batchSize: 16, augment: 0, validationShare: 0.2 };
// Texts: the engine's own default learning rate for unit-vector features (features/train/engine.js).
export const TEXT_DEFAULTS = { ...DEFAULTS, learningRate: tejas.TEXT_LEARNING_RATE };

/** The Train screen's settings for a project that has no model yet. */
export const trainingDefaults = (project) => ({ ...(project?.kind === 'text' ? TEXT_DEFAULTS : DEFAULTS) });

/** projectId → the latest run: {status, stage, progress, history, started, seconds, model, error, controller, listeners} */
const runs = new Map();

export const trainingRun = (projectId) => runs.get(projectId) ?? null;

/** Start training a project (also used by "retrain now" on the predict and evaluate screens). */
export function startTraining(projectId, options) {
  const previous = runs.get(projectId);
  if (previous?.status === 'running') return previous;
  const run = {
    status: 'running', stage: 'preparing', progress: null, history: [], started: performance.now(), seconds: 0,
    options, model: null, error: null, controller: new AbortController(), listeners: new Set(),
  };
  const notify = () => run.listeners.forEach((listener) => listener(run));
  runs.set(projectId, run);
  tejas.train(projectId, {
    ...options, signal: run.controller.signal,
    onProgress: (p) => {
      run.stage = p.stage;
      run.progress = p;
      if (p.epochDone) run.history.push(p);
      notify();
    },
  }).then((model) => {
    Object.assign(run, { status: 'done', model, seconds: (performance.now() - run.started) / 1000 });
    if (!document.querySelector('[data-screen="train"]')) toast(`Training finished: ${percent(model.metrics.accuracy)} validation accuracy.`);
  }, (error) => {
    Object.assign(run, { status: error.name === 'AbortError' ? 'cancelled' : 'failed', error });
    if (run.status === 'failed' && !document.querySelector('[data-screen="train"]')) showError(error, 'Training failed: ');
  }).finally(notify);
  notify();
  return run;
}

/**
 * Retrain the project with its model's settings (after a correction), telling `line` how it goes;
 * when the run is done, `status.model` becomes the new model, `again()` predicts anew, and
 * view.dataset.retrained is set.
 */
export function retrainThen(project, status, line, view, again) {
  const run = startTraining(project.id, deviceOptions(status.model));
  const follow = async (r) => {
    const p = r.progress;
    if (r.status === 'running') {
      line.textContent = p?.stage === 'training'
        ? `Retraining: epoch ${p.epoch} of ${r.options.epochs}${p.etaSeconds ? ` · about ${formatSeconds(p.etaSeconds)} left` : ''}`
        : `Retraining: reading ${project.kind === 'text' ? 'texts' : 'images'}…`;
      return;
    }
    r.listeners.delete(follow);
    if (r.status === 'done') {
      status.model = r.model;
      line.textContent = `Retrained: ${percent(r.model.metrics.accuracy)} validation accuracy. Predicting again…`;
      await again();
      line.textContent = `Retrained: ${percent(r.model.metrics.accuracy)} validation accuracy.`;
      view.dataset.retrained = 'true';
    } else {
      line.textContent = r.status === 'cancelled' ? 'Retraining cancelled.' : `Retraining failed: ${r.error.message}`;
    }
  };
  run.listeners.add(follow);
  follow(run);
}

/** The on-device training options a model was made with (a server model's `full` mode becomes the head). */
export function deviceOptions(model) {
  if (!model?.server) return { ...DEFAULTS, ...(model?.options ?? {}) };
  const options = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS)) if (model.options?.[key] !== undefined) options[key] = model.options[key];
  if (!modesFor('app', 'image').includes(options.mode)) options.mode = 'head';
  return options;
}

function readOptions(form) {
  const value = (name) => form.elements[name].value;
  return {
    mode: value('mode'), epochs: Number(value('epochs')), learningRate: Number(value('learningRate')),
    batchSize: Number(value('batchSize')), augment: Number(value('augment')), validationShare: Number(value('validationShare')) / 100,
  };
}

function optionsForm(defaults, manifest, text = false) {
  const number = (name, label, attrs, hint) => field(label, h('input', { type: 'number', name, value: defaults[name], required: true, ...attrs }), hint).field;
  const canLastBlock = !text && !!manifest?.training?.last_block;
  const noun = text ? 'text' : 'image';
  const mode = (value, label, hint, disabled = false) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'mode', value, checked: defaults.mode === value, disabled }),
    h('span', {}, h('strong', {}, label), h('small', { class: 'muted' }, hint)));
  const share = h('input', { type: 'range', id: 'validation-share', name: 'validationShare', min: 0, max: 50, step: 5, value: Math.round(defaults.validationShare * 100) });
  const shareOut = h('output', { for: share.id }, `${share.value}%`);
  share.addEventListener('input', () => { shareOut.textContent = `${share.value}%`; });
  return h('details', { class: 'advanced' },
    h('summary', {}, 'Advanced settings'),
    h('div', { class: 'grid-form' },
      h('fieldset', { class: 'modes' }, h('legend', {}, 'What to train'),
        mode('head', 'Classifier only (fast)', text ? 'Trains a classifier on the sentence encoder\'s features.' : 'Trains the last layer on the backbone\'s features.'),
        mode('last_block', 'Classifier + last block (slower)', canLastBlock
          ? 'Also fine-tunes the backbone\'s last block: can be more accurate on unusual images.'
          : text ? 'Not available for texts: the classifier trains on the sentence encoder\'s features.'
            : 'Not available: these artifacts were exported without --train last-block.', !canLastBlock)),
      number('epochs', 'Epochs', { min: 1, max: 500, step: 1 }, `Passes over the training ${noun}s.`),
      number('learningRate', 'Learning rate', { min: 0.00001, max: 1, step: 'any' }, 'Smaller is slower but steadier.'),
      field('Batch size', h('select', { name: 'batchSize' }, [4, 8, 16, 32, 64].map((n) => h('option', { value: n, selected: n === defaults.batchSize }, String(n))))).field,
      text ? h('input', { type: 'hidden', name: 'augment', value: 0 })
        : field('Augmentation', h('select', { name: 'augment' }, [[0, 'Off'], [1, '1 extra view per image'], [2, '2 extra views'], [4, '4 extra views']]
          .map(([n, label]) => h('option', { value: n, selected: n === defaults.augment }, label))), 'Random crops, flips and colour changes of each image.').field,
      h('div', { class: 'field' }, h('label', { for: share.id }, 'Held out for validation'),
        h('div', { class: 'row' }, share, shareOut), h('small', { class: 'hint' }, `${text ? 'Texts' : 'Images'} kept aside to measure accuracy honestly.`))));
}

/** The manifest of the artifacts a project trains with (a text project's: the sentence encoder's), or null. */
export function projectManifest(project) {
  if (project.kind !== 'text') return tejas.manifest().catch(() => null);
  return tejas.projectArtifacts(project.id).then((artifacts) => tejas.manifest(artifacts)).catch(() => null);
}

export async function render(view, { project }) {
  const text = project.kind === 'text';
  const noun = text ? 'text' : 'image';
  const [classes, samples, initialStatus, manifest] = await Promise.all([
    tejas.listClasses(project.id), tejas.listSamples(project.id), tejas.modelStatus(project.id), projectManifest(project)]);
  let status = initialStatus;
  const counts = classes.map((c) => samples.filter((s) => s.classId === c.id).length);
  const blockers = [];
  if (!manifest) {
    blockers.push(text ? 'The text model artifacts are missing: run `tejas export --modality text --out artifacts/text` (the README\'s first command does).'
      : 'The model artifacts are missing: run the README\'s first command (it exports them).');
  }
  if (classes.length < 2) blockers.push(`Add at least 2 classes (this project has ${classes.length}).`);
  classes.forEach((c, i) => { if (counts[i] < 2) blockers.push(`Class "${c.name}" needs at least 2 ${noun}s (has ${counts[i]}).`); });

  const defaults = status.model ? deviceOptions(status.model) : trainingDefaults(project);
  if (text) Object.assign(defaults, { mode: 'head', augment: 0 });
  const form = h('form', { class: 'train-form', id: 'train-form' });
  const start = h('button', { class: 'primary big', id: 'train-start', disabled: blockers.length > 0 }, 'Train model');
  const cancel = h('button', { type: 'button', class: 'secondary', id: 'train-cancel', hidden: true }, 'Cancel');
  const stage = h('p', { id: 'train-stage', role: 'status', 'aria-live': 'polite' });
  const bar = h('progress', { id: 'train-progress', max: 1, value: 0, 'aria-labelledby': 'train-stage', hidden: true });
  const chartBox = h('div', { class: 'chart', id: 'train-chart', 'aria-hidden': 'true' });
  const historyBox = h('div', { id: 'history-table' });
  const numbers = h('details', { class: 'numbers-box' }, h('summary', {}, 'Numbers per epoch'), historyBox);
  const result = h('div', { id: 'train-result', 'aria-live': 'polite' });
  append(form, 
    h('p', {}, `${plural(samples.length, noun)} in ${plural(classes.length, 'class', 'classes')}.`),
    blockers.length ? h('div', { class: 'warning', role: 'status' }, h('strong', {}, 'Not ready to train. '), blockers.join(' '), ' ',
      h('a', { href: projectUrl(project.id, 'data') }, 'Go to Data')) : null,
    optionsForm(defaults, manifest, text),
    h('div', { class: 'row wrap' }, start, cancel));

  append(view, 
    h('div', { class: 'title-row' }, h('h1', {}, 'Train')),
    h('section', { class: 'card' }, form),
    h('section', { class: 'card', 'aria-labelledby': 'progress-title' },
      h('h2', { id: 'progress-title' }, 'Progress'), stage, bar, chartBox, numbers, result));
  const chart = createChart(chartBox);

  const show = (run) => {
    const running = run?.status === 'running';
    start.disabled = running || blockers.length > 0;
    start.textContent = running ? 'Training…' : status.model || run?.model ? 'Train again' : 'Train model';
    cancel.hidden = !running;
    bar.hidden = !running;
    const history = run ? run.history : status.model?.history ?? [];
    chart.set(history);
    historyBox.replaceChildren(historyTable(history));
    if (!run) {
      stage.textContent = status.model ? '' : 'Not trained yet. Press “Train model”: it takes seconds to a few minutes.';
      result.replaceChildren(status.model ? modelSummary(project, status.model, status.stale, status) : '');
      return;
    }
    const p = run.progress;
    if (running) {
      if (p?.stage === 'embedding') {
        bar.value = p.done / p.total;
        stage.textContent = `Reading ${noun}s: ${p.done} of ${p.total}`;
      } else if (p?.stage === 'training') {
        bar.value = p.step / p.totalSteps;
        const eta = p.etaSeconds ? ` · about ${formatSeconds(p.etaSeconds)} left` : '';
        stage.textContent = `Training: epoch ${p.epoch} of ${run.options.epochs}${eta}`;
      } else {
        bar.removeAttribute('value');
        stage.textContent = 'Preparing…';
      }
      result.replaceChildren();
    } else if (run.status === 'done') {
      stage.textContent = `Finished in ${formatSeconds(run.seconds)}.`;
      result.replaceChildren(modelSummary(project, run.model, false));
    } else if (run.status === 'cancelled') {
      stage.textContent = 'Cancelled. The previous model (if any) is unchanged.';
      result.replaceChildren();
    } else {
      stage.textContent = '';
      result.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Training failed: ${run.error.message}`));
    }
    view.dataset.training = run.status;
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const run = startTraining(project.id, readOptions(form));
    subscribe(run);
  });
  let current = null;
  const subscribe = (run) => {
    current?.listeners.delete(show);
    current = run;
    run.listeners.add(show);
    cancel.onclick = () => run.controller.abort();
    show(run);
  };
  const existing = trainingRun(project.id);
  if (existing) subscribe(existing); else show(null);
  const server = await serverTrainingCard(project, {
    images: samples.length,
    onModel: (model) => {
      status = { ...status, model, stale: false, artifactsChanged: null };
      if (current?.status === 'running') return;
      current?.listeners.delete(show);
      current = null;
      show(null);
    },
  });
  view.append(server.element);
  return () => {
    current?.listeners.delete(show);
    chart.destroy();
    server.cleanup();
  };
}

/**
 * When the project's model was trained with other artifacts (an app update brought a new backbone): the
 * reason, and one button that retrains it with the same settings on the new backbone and opens Train.
 */
export function artifactsChangedNotice(project, status, manifest = null) {
  if (!status.artifactsChanged) return null;
  const retrain = async () => {
    const options = deviceOptions(status.model);
    if (options.mode === 'last_block' && !(manifest ?? await tejas.manifest().catch(() => null))?.training?.last_block) options.mode = 'head';
    startTraining(project.id, options);
    location.hash = projectUrl(project.id, 'train');
  };
  return h('div', { class: 'warning', id: 'artifacts-changed', role: 'alert' },
    h('p', {}, status.artifactsChanged),
    !status.artifactsMissing && h('button', { type: 'button', class: 'primary', id: 'retrain-new-backbone', onclick: () => retrain().catch((error) => showError(error)) },
      'Retrain with the new backbone'));
}

function modelSummary(project, model, stale, status = null) {
  const m = model.metrics;
  const noun = project.kind === 'text' ? 'text' : 'image';
  return h('div', { class: 'summary' },
    status ? artifactsChangedNotice(project, status) : null,
    stale ? h('p', { class: 'warning', id: 'stale' }, 'The data changed since this model was trained: train again to include it.') : null,
    h('p', { class: 'big-number' }, h('span', { id: 'validation-accuracy' }, percent(m.accuracy)), ' validation accuracy'),
    m.macro ? h('p', {}, 'Macro F1 ', h('strong', { id: 'macro-f1', dataset: { value: m.macro.f1 } }, percent(m.macro.f1, 1)),
      ' (the mean of the classes\' F1: a rare class counts as much as a common one)') : null,
    h('p', { class: 'muted', id: 'model-origin' }, `On ${plural(m.count, `held-out ${noun}`)}; trained ${new Date(model.created).toLocaleString()} `
      + `(${serverOrigin(model) ?? (model.mode === 'last_block' ? 'classifier + last block' : 'classifier only')}, `
      + `${plural(model.options?.epochs ?? model.history.length, 'epoch')}).`),
    h('div', { class: 'row wrap' },
      h('a', { class: 'button secondary', href: projectUrl(project.id, 'evaluate') }, 'See what it gets wrong'),
      h('a', { class: 'button secondary', href: projectUrl(project.id, 'predict') }, 'Try it'),
      h('a', { class: 'button secondary', href: projectUrl(project.id, 'export') }, 'Download')));
}
