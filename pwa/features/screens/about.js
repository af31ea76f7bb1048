// About & privacy: what leaves the device (nothing unless sync is on; then exactly what, and for how
// long the server keeps it), what this browser can do, the model artifacts in use, and a self-check
// that runs every exported ONNX file in this browser.
import { MESSAGE, callWorker } from '../../protocol.js';
import { DEFAULT_ARTIFACTS, manifest as loadManifest, syncStatus } from '../../tejas.js';
import { storageStatus } from '../../db.js';
import { DEFAULT_RETENTION_DAYS } from '../sync/service.js';
import { append, formatBytes, h, plural } from './dom.js';

function fact(term, id, text = '…') {
  return [h('dt', {}, term), h('dd', { id }, text)];
}

export async function render(view) {
  append(view, 
    h('h1', {}, 'About & privacy'),
    h('section', { class: 'card', 'aria-labelledby': 'privacy-title' },
      h('h2', { id: 'privacy-title' }, 'What leaves this device'),
      h('p', {}, h('strong', {}, 'Nothing, unless you turn sync on.'), ' Your images, classes and models are stored in this '
        + 'browser and trained here, on your processor. Tejas sends no analytics. After the first visit it works with the '
        + 'network off.'),
      h('h3', { id: 'sync-privacy' }, 'Sync (off until you turn it on)'),
      h('p', {}, 'Only while you are signed in to a sync server, and only for the projects whose “Sync this project” switch is '
        + 'on (', h('a', { href: '#/sync' }, 'Sync'), ' screen), Tejas sends that server each such project’s:'),
      h('ul', { id: 'sync-sends' },
        h('li', {}, 'project name and class names;'),
        h('li', {}, 'image bytes, exactly as you added them, with each image’s label (its class) and metadata: file name, '
          + 'where it came from, when it was added, format, width, height and size;'),
        h('li', {}, 'model parameters and metrics: each trained model’s weights, its validation metrics, training history '
          + 'and settings, and which model is current;'),
        h('li', {}, 'ids of these records, the time of each change and a random id of this device.')),
      h('p', { id: 'stream-privacy' }, 'Predict → “Many images” runs here, on this device: those images are never sent. '
        + 'Predict → “Live stream” sends the server each image you choose to send to a stream (files, or camera frames '
        + 'while “send a frame” is on); the server deletes an image once it is classified and keeps its result (the class '
        + 'and confidence) like a project’s data, until the stream is deleted or the retention period below has passed.'),
      h('p', {}, 'Creating an account or signing in sends your email and password (the server keeps only a hash of the password). '
        + 'Signing out, or switching a project’s sync off, keeps everything on this device.'),
      h('p', { id: 'retention' }, 'How long the server keeps it: a project’s copy is deleted ',
        h('strong', { id: 'retention-days' }, `${DEFAULT_RETENTION_DAYS} days`),
        ' after its last change, unless it changes again (the server’s setting, shown here once you sign in; '
        + `${DEFAULT_RETENTION_DAYS} days by default). Deleting your account deletes everything the server holds for you at once.`)),
    h('section', { class: 'card', 'aria-labelledby': 'status-title' },
      h('h2', { id: 'status-title' }, 'This browser'),
      h('dl', { class: 'facts' },
        fact('Cross-origin isolated (WASM threads)', 'isolated', self.crossOriginIsolated ? 'yes' : 'no — training will be single-threaded'),
        fact('CPU threads', 'threads', String(navigator.hardwareConcurrency || 1)),
        fact('Offline support', 'offline', 'serviceWorker' in navigator ? 'available' : 'not supported by this browser'),
        fact('Storage', 'storage'))),
    h('section', { class: 'card', 'aria-labelledby': 'model-title' },
      h('h2', { id: 'model-title' }, 'Model artifacts'),
      h('dl', { class: 'facts' },
        fact('Backbone', 'architecture'), fact('Weights', 'weights'), fact('Classes per project', 'classes')),
      h('button', { id: 'selfcheck', type: 'button', class: 'primary', disabled: true, onclick: selfCheck }, 'Run self-check'),
      h('p', { id: 'selfcheck-status', role: 'status', 'aria-live': 'polite' }),
      h('pre', { id: 'selfcheck-result', hidden: true, tabindex: 0, 'aria-label': 'Self-check result' })),
  );
  describeStorage();
  describeRetention();
  await describeArtifacts();
}

async function describeStorage() {
  const status = await storageStatus();
  const el = document.getElementById('storage');
  if (el) el.textContent = `${formatBytes(status.usage)} used of ${formatBytes(status.quota)}; ${status.persisted ? 'persistent' : 'may be cleared by the browser when space runs low'}`;
}

async function describeRetention() {
  const status = await syncStatus().catch(() => null);
  const el = document.getElementById('retention-days');
  if (el && status?.retentionDays) el.textContent = plural(status.retentionDays, 'day');
}

async function describeArtifacts() {
  const $ = (id) => document.getElementById(id);
  try {
    const manifest = await loadManifest();
    $('architecture').textContent = `${manifest.architecture} (${manifest.feature_size} features, ${manifest.input.size.join('×')} px)`;
    $('weights').textContent = `${manifest.weights.kind} — ${manifest.weights.origin}`;
    $('classes').textContent = `2 to ${manifest.max_classes}`;
    $('selfcheck').disabled = false;
  } catch (error) {
    $('architecture').textContent = `no artifacts (${error.message}); run the README's first command`;
  }
}

async function selfCheck() {
  const $ = (id) => document.getElementById(id);
  const [button, status, result] = [$('selfcheck'), $('selfcheck-status'), $('selfcheck-result')];
  button.disabled = true;
  status.textContent = 'Starting…';
  const worker = new Worker(new URL('../../workers/selfcheck.js', import.meta.url), { type: 'module' });
  try {
    const value = await callWorker(worker, MESSAGE.SELFCHECK, { artifacts: DEFAULT_ARTIFACTS },
      { onProgress: (p) => { status.textContent = `${p.stage}…`; } });
    const first = value.training.head.losses[0];
    const last = value.training.head.losses.at(-1);
    status.textContent = `Passed: backbone ran in ${value.backbone.ms.toFixed(0)} ms; head loss ${first.toFixed(3)} → ${last.toFixed(3)}.`;
    result.textContent = JSON.stringify(value, null, 2);
    result.hidden = false;
    document.body.dataset.selfcheck = 'passed';
  } catch (error) {
    status.textContent = `Self-check failed: ${error.message}`;
    document.body.dataset.selfcheck = 'failed';
  } finally {
    worker.terminate();
    button.disabled = false;
  }
}
