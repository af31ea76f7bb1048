// Placeholder app shell: reports what this browser can do and runs the artifact self-check.
import { MESSAGE, callWorker } from './protocol.js';
import { applyUpdate, registerServiceWorker } from './features/update.js';

const ARTIFACTS = 'artifacts/default/';
const $ = (id) => document.getElementById(id);

function describeBrowser() {
  $('isolated').textContent = self.crossOriginIsolated ? 'yes' : 'no — training will be single-threaded';
  $('threads').textContent = String(navigator.hardwareConcurrency || 1);
  $('offline').textContent = 'serviceWorker' in navigator ? 'available' : 'not supported by this browser';
}

async function describeArtifacts() {
  try {
    const response = await fetch(`${ARTIFACTS}manifest.json`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const manifest = await response.json();
    $('architecture').textContent = `${manifest.architecture} (${manifest.feature_size} features, ${manifest.input.size.join('×')} px)`;
    $('weights').textContent = `${manifest.weights.kind} — ${manifest.weights.origin}`;
    $('classes').textContent = `2 to ${manifest.max_classes}`;
    $('selfcheck').disabled = false;
  } catch (error) {
    $('architecture').textContent = `no artifacts at ${ARTIFACTS} (${error.message}); run the README's first command`;
  }
}

async function selfCheck() {
  const button = $('selfcheck');
  const status = $('selfcheck-status');
  const result = $('selfcheck-result');
  button.disabled = true;
  status.textContent = 'Starting…';
  const worker = new Worker(new URL('./workers/selfcheck.js', import.meta.url), { type: 'module' });
  try {
    const value = await callWorker(worker, MESSAGE.SELFCHECK, { artifacts: new URL(ARTIFACTS, location.href).href },
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

async function startServiceWorker() {
  try {
    const registration = await registerServiceWorker({
      onUpdateReady: () => {
        $('offline').textContent = 'a new version is ready — ';
        const button = document.createElement('button');
        button.textContent = 'reload to use it';
        button.addEventListener('click', () => applyUpdate(registration));
        $('offline').append(button);
      },
    });
    if (registration) $('offline').textContent = 'ready (app shell cached)';
  } catch (error) {
    $('offline').textContent = `unavailable (${error.message})`;
  }
}

describeBrowser();
$('selfcheck').addEventListener('click', selfCheck);
describeArtifacts();
startServiceWorker();
