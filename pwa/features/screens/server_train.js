// The Train screen's "Train on the server" card: for a signed-in account whose project syncs, what
// goes to the server (nothing new), its device, an estimate, mode and epochs; then the job live (the
// same chart as on the device), reconnecting after cuts, and its result stored as the project's model
// with the server's ONNX and .pt to download. Signed out or not synced: one line pointing to Sync.
import * as tejas from '../../tejas.js';
import * as api from '../jobs/api.js';
import { cancelServerTraining, onServerRun, resumeServerJobs, serverRun, startServerTraining } from '../jobs/watch.js';
import { serverOrigin } from '../jobs/results.js';
import { modeLabel, modesFor } from '../catalog.js';
import { createChart } from './chart.js';
import { append, busy, download, field, fileStem, formatSeconds, h, percent, plural, showError } from './dom.js';

// How this screen presents each mode the server's trainer offers (which ones: the catalog, features/catalog.js).
const CHOICES = {
  head: ['Classifier only', 'The last layer on the backbone\'s features (what the device trains, faster there).'],
  last_block: ['Classifier + last block', 'Also fine-tunes the backbone\'s last block.'],
  full: ['Full fine-tune', 'Trains the whole network: what a server adds. A new backbone comes back with the model.'],
};
// A text project trains on the server in one way (docs/jobs.md "Text jobs"): the classifier alone trains on the device.
const TEXT_CHOICES = {
  full: ['Fine-tune the text encoder', 'Trains the whole sentence encoder with the classifier. The fine-tuned encoder comes back with the model.'],
};
const choices = (text) => modesFor('trainer', text ? 'text' : 'image')
  .map((value) => [value, ...((text ? TEXT_CHOICES : CHOICES)[value] ?? [modeLabel(value), ''])]);
const isText = (project) => project?.kind === 'text';

const resume = () => resumeServerJobs({ defaultArtifacts: tejas.DEFAULT_ARTIFACTS }).catch(() => {});

/** Start following remembered jobs now and whenever the network returns (called once by the app). */
export function watchServerJobs() {
  resume();
  addEventListener('online', resume);
}

function deviceText(caps) {
  if (!caps.workers) return 'No training worker is answering on the server right now: a job waits in its queue until one starts.';
  return caps.device === 'cuda' ? `The server trains on a GPU: ${caps.device_name ?? 'CUDA'}.` : 'The server trains on its CPU (no GPU).';
}

function estimateText(caps, mode, images, epochs, unit = 'image') {
  const speed = caps?.throughput?.[mode];
  if (!speed) return 'Time: unknown until the server\'s first run in this mode.';
  return `Time: about ${formatSeconds((images * epochs) / speed)} (${plural(images, unit)} × ${plural(epochs, 'epoch')} at ${Math.round(speed)} ${unit}s/s), plus waiting in the queue.`;
}

/** Download a result file of a job with the account's token (fetch + Blob: no token in a URL). */
async function saveJobFile(jobId, name, as) {
  const bytes = await api.jobFile(await api.account(), jobId, name);
  download(new Blob([bytes], { type: 'application/octet-stream' }), as);
}

function resultDownloads(project, jobId) {
  const stem = fileStem(project.name);
  const button = (id, label, name, as) => {
    const b = h('button', { type: 'button', class: 'secondary', id }, label);
    b.addEventListener('click', () => busy(b, 'Downloading…', () => saveJobFile(jobId, name, as)
      .catch((error) => showError(error, `Could not download ${name}: `))));
    return b;
  };
  return h('div', { class: 'row wrap' },
    button('server-download-onnx', 'Server\'s ONNX', 'model.onnx', `${stem}-server.onnx`),
    button('server-download-pt', 'Server\'s PyTorch (.pt)', 'model.pt', `${stem}-server.pt`));
}

function statusText(watch, unit = 'image') {
  const where = watch.device === 'cuda' ? `training on ${watch.deviceName ?? 'a GPU'}` : 'training on the server\'s CPU';
  if (watch.connection === 'reconnecting' && !['done', 'failed', 'cancelled'].includes(watch.status)) {
    return navigator.onLine ? 'Connection to the server lost: reconnecting… (the job carries on there)'
      : 'Offline: the job carries on on the server; it reconnects when the network returns.';
  }
  switch (watch.status) {
    case 'syncing': return `Syncing the project so the server has its latest ${unit}s…`;
    case 'starting': return 'Starting the job…';
    case 'queued': {
      const waiting = watch.position ? `Waiting in the server's queue (position ${watch.position})…` : 'Waiting for the server to start…';
      return watch.notice ? `${waiting} ${watch.notice}` : waiting;
    }
    case 'running': {
      const e = watch.epoch;
      if (!e) return `Started, ${where}: preparing…`;
      const eta = e.eta_seconds ? ` · about ${formatSeconds(e.eta_seconds)} left` : '';
      const speed = e.images_per_second ? ` · ${Math.round(e.images_per_second)} ${unit}s/s` : '';
      return `Epoch ${e.epoch} of ${e.epochs}, ${where}${speed}${eta}`;
    }
    case 'importing': return 'Finished on the server: downloading the model…';
    case 'done': return 'Finished: the server\'s model is now this project\'s model and works offline.';
    case 'cancelled': return 'Cancelled. The previous model (if any) is unchanged.';
    default: return '';
  }
}

/**
 * The card (or the hint) for `project`, as {element, cleanup}. `onModel` runs when a server model was
 * stored (the screen redraws its model summary).
 */
export async function serverTrainingCard(project, { images, onModel }) {
  const text = isText(project);
  const unit = text ? 'text' : 'image';
  const sync = await tejas.syncStatus().catch(() => null);
  const on = sync?.signedIn && sync.projects.find((p) => p.id === project.id)?.on;
  if (!on) {
    const gain = text ? 'whose GPU can fine-tune the whole text encoder' : 'whose GPU can fine-tune the whole network';
    return { element: h('p', { class: 'muted', id: 'server-train-hint' }, `To train on a server (${gain}), sign in and switch sync on for this project on the `,
      h('a', { href: '#/sync' }, 'Sync screen'), '.'), cleanup: () => {} };
  }
  const modes = h('fieldset', { class: 'modes' }, h('legend', {}, 'What to train'),
    choices(text).map(([value, label, hint]) => h('label', { class: 'choice' },
      h('input', { type: 'radio', name: 'serverMode', value, checked: value === 'full' }),
      h('span', {}, h('strong', {}, label), h('small', { class: 'muted' }, hint)))));
  const epochs = h('input', { type: 'number', name: 'serverEpochs', min: 1, max: 500, step: 1, value: 10, required: true });
  const device = h('p', { id: 'server-device' }, 'Asking the server what it trains on…');
  const estimate = h('p', { id: 'server-estimate', class: 'muted' });
  const start = h('button', { class: 'primary', id: 'server-train-start' }, 'Train on the server');
  const cancel = h('button', { type: 'button', class: 'secondary', id: 'server-train-cancel', hidden: true }, 'Cancel');
  const status = h('p', { id: 'server-train-status', role: 'status', 'aria-live': 'polite' });
  const chartBox = h('div', { class: 'chart', id: 'server-train-chart', 'aria-hidden': 'true', dataset: { points: '0' } });
  const result = h('div', { id: 'server-train-result', 'aria-live': 'polite' });
  const form = h('form', { class: 'train-form', id: 'server-train-form' },
    h('p', {}, `This project syncs, so the server already has its ${unit}s and labels; training there sends nothing else. `
      + 'The trained model comes back here as an ordinary model that works offline.'),
    device, h('div', { class: 'grid-form' }, modes,
      field('Epochs', epochs, `Passes over the training ${unit}s.`).field),
    estimate, h('div', { class: 'row wrap' }, start, cancel));
  const element = h('section', { class: 'card', id: 'server-train', 'aria-labelledby': 'server-train-title' },
    h('h2', { id: 'server-train-title' }, 'Train on the server'), form, status, chartBox, result);

  let caps = null;
  const mode = () => form.elements.serverMode.value;
  const showEstimate = () => { estimate.textContent = caps ? estimateText(caps, mode(), images, Number(epochs.value) || 0, unit) : ''; };
  form.addEventListener('change', showEstimate);
  epochs.addEventListener('input', showEstimate);
  api.account().then(api.capabilities).then((answer) => {
    caps = answer;
    device.textContent = deviceText(caps);
    const offered = text ? caps.text_modes : caps.modes;
    for (const input of form.querySelectorAll('input[name=serverMode]')) {
      input.disabled = Array.isArray(offered) && !offered.includes(input.value);
    }
    if (text && !Array.isArray(caps.text_modes)) device.textContent += ' This server does not train text classifiers yet (update it).';
    showEstimate();
  }, (error) => { device.textContent = `Cannot ask the server what it trains on: ${error.message}`; });

  let chart = null;
  let watched = null;
  const show = (watch) => {
    const active = watch && !['done', 'failed', 'cancelled'].includes(watch.status);
    start.disabled = Boolean(active);
    cancel.hidden = !active || !watch.jobId;
    status.textContent = watch ? statusText(watch, unit) : '';
    element.dataset.status = watch?.status ?? 'idle';
    element.dataset.connection = watch?.connection ?? 'live';
    element.dataset.checkpoint = String(watch?.checkpoint ?? 0);
    if (watch?.jobId) element.dataset.job = watch.jobId;
    if (watch?.history.length || active) {
      chart ??= createChart(chartBox);
      chart.set(watch.history);
    }
    if (watch?.status === 'failed') {
      result.replaceChildren(h('p', { class: 'error', role: 'alert' }, `Server training failed: ${watch.error}`));
    } else if (watch?.status === 'done' && watch.model) {
      if (result.dataset.model !== watch.model.id) {
        result.dataset.model = watch.model.id;
        result.replaceChildren(resultSummary(project, watch.model));
        onModel?.(watch.model);
      }
    } else if (!active) {
      showCurrent();
    } else {
      result.replaceChildren();
    }
  };
  const showCurrent = async () => {
    const model = await tejas.currentModel(project.id);
    if (model?.server && !result.hasChildNodes()) {
      result.dataset.model = model.id;
      result.replaceChildren(resultSummary(project, model));
    }
  };
  const subscribe = (watch) => {
    watched?.listeners.delete(show);
    watched = watch;
    watch?.listeners.add(show);
    show(watch);
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    result.replaceChildren();
    // seed and validation share as the device trains by default: both runs hold out the same images
    subscribe(startServerTraining(project.id, { mode: mode(), epochs: Number(epochs.value), seed: 0, validation_share: 0.2 },
      { syncNow: tejas.syncNow, defaultArtifacts: tejas.DEFAULT_ARTIFACTS }));
  });
  cancel.addEventListener('click', () => busy(cancel, 'Cancelling…', () => cancelServerTraining(project.id)
    .catch((error) => showError(error, 'Could not cancel: '))));
  // a remembered job picked up after this card was drawn
  const stop = onServerRun((watch) => { if (watch.projectId === project.id) subscribe(watch); });
  subscribe(serverRun(project.id));
  resume();
  return {
    element,
    cleanup: () => {
      stop();
      watched?.listeners.delete(show);
      chart?.destroy();
    },
  };
}

function resultSummary(project, model) {
  return append(h('div', { class: 'summary' }),
    h('p', {}, h('strong', { id: 'server-validation-accuracy' }, percent(model.metrics.accuracy)), ' validation accuracy, ',
      serverOrigin(model), ` (${plural(model.history.length, 'epoch')}).`),
    resultDownloads(project, model.server.job));
}
