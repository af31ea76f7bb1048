// The app shell: a hash router over the screens in features/screens/, the service worker (offline use and
// updates), the install button, the offline indicator and the reload notice when another tab upgrades the database.
import { applyUpdate, registerServiceWorker } from './features/update.js';
import { getProject } from './features/dataset/projects.js';
import { h, projectUrl, showError } from './features/screens/dom.js';
import { REMOTE_CHANGES_CHANNEL } from './protocol.js';
import * as projectsScreen from './features/screens/projects.js';
import * as dataScreen from './features/screens/data.js';
import * as textDataScreen from './features/screens/data_text.js';
import * as trainScreen from './features/screens/train.js';
import * as predictScreen from './features/screens/predict.js';
import * as evaluateScreen from './features/screens/evaluate.js';
import * as exportScreen from './features/screens/exports.js';
import * as aboutScreen from './features/screens/about.js';
import * as syncScreen from './features/screens/sync.js';
import { startSync } from './features/sync/client.js';
import { watchServerJobs } from './features/screens/server_train.js';
import { backgroundEmbedding } from './tejas.js';
import { onDatabaseOutdated } from './db.js';

const $ = (id) => document.getElementById(id);

/** The screens of a project, in tab order (a text project's Data screen is data_text.js). */
const TABS = [
  ['data', 'Data', dataScreen],
  ['train', 'Train', trainScreen],
  ['predict', 'Predict', predictScreen],
  ['evaluate', 'Evaluate', evaluateScreen],
  ['export', 'Export', exportScreen],
];

let cleanup = null;
let routing = Promise.resolve();

/** '#/p/<id>/<tab>' → {screen, projectId}; '#/about'; '#/sync'; anything else → the projects list. */
function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  if (parts[0] === 'p' && parts[1]) {
    const tab = TABS.find(([name]) => name === parts[2]) ?? TABS[0];
    return { screen: tab[0], module: tab[2], title: tab[1], projectId: parts[1] };
  }
  if (parts[0] === 'about') return { screen: 'about', module: aboutScreen, title: 'About & privacy' };
  if (parts[0] === 'sync') return { screen: 'sync', module: syncScreen, title: 'Sync' };
  return { screen: 'projects', module: projectsScreen, title: 'Projects' };
}

async function render() {
  const route = parseRoute(location.hash);
  const view = $('view');
  await cleanup?.();
  cleanup = null;
  delete view.dataset.ready;
  view.dataset.screen = route.screen;
  const tabs = $('tabs');
  let project = null;
  if (route.projectId) {
    try {
      project = await getProject(route.projectId);
      backgroundEmbedding.watch(project.id);  // what a reload or another device left unembedded, then new images
    } catch {
      location.hash = '#/';
      showError('That project no longer exists on this device.');
      return;
    }
    tabs.replaceChildren(
      h('a', { href: '#/', class: 'back' }, h('span', { 'aria-hidden': 'true' }, '←'), ' Projects'),
      h('span', { class: 'project-name', title: project.name }, project.name),
      project.kind === 'text' ? h('span', { class: 'badge kind-badge' }, 'Text') : null,
      h('ul', {}, TABS.map(([name, label]) => h('li', {}, h('a', {
        href: projectUrl(project.id, name), 'aria-current': name === route.screen ? 'page' : null,
      }, label)))));
    tabs.hidden = false;
  } else {
    tabs.hidden = true;
    tabs.replaceChildren();
  }
  view.replaceChildren();
  document.title = project ? `${route.title} · ${project.name} · Tejas` : `${route.title} · Tejas`;
  const module = route.screen === 'data' && project?.kind === 'text' ? textDataScreen : route.module;
  try {
    cleanup = (await module.render(view, { project, projectId: project?.id })) ?? null;
  } catch (error) {
    view.append(h('p', { class: 'error', role: 'alert' }, `This screen failed to load: ${error.message}`));
  }
  view.dataset.ready = 'true';
}

function onRoute() {
  $('remote-banner').hidden = true;
  routing = routing.then(render, render);
  return routing;
}

/**
 * A sync pulled other devices' changes: the projects list redraws itself (unless someone is typing
 * or a dialog is open there); a screen of a changed project offers to show them (a redraw would throw
 * away what is on it: a prediction, a selection).
 */
function watchRemoteChanges() {
  const channel = new BroadcastChannel(REMOTE_CHANGES_CHANNEL);
  channel.onmessage = ({ data }) => {
    const route = parseRoute(location.hash);
    const busy = document.querySelector('dialog[open]')
      || document.activeElement?.matches?.('#view input, #view textarea, #view select');
    if (route.screen === 'projects' && !busy) onRoute();
    else if (route.screen === 'projects' || data.projects?.includes(route.projectId)) $('remote-banner').hidden = false;
  };
  $('remote-show').addEventListener('click', onRoute);
}

/** Another tab opened a newer version of the database: this page closed its connection; offer a reload. */
function watchDatabaseVersion() {
  onDatabaseOutdated(() => { $('outdated-banner').hidden = false; });
  $('outdated-reload').addEventListener('click', () => location.reload());
}

function watchNetwork() {
  const update = () => { $('network').hidden = navigator.onLine; };
  addEventListener('online', update);
  addEventListener('offline', update);
  update();
}

function offerInstall() {
  let prompt = null;
  addEventListener('beforeinstallprompt', (event) => {
    event.preventDefault();
    prompt = event;
    $('install').hidden = false;
  });
  $('install').addEventListener('click', async () => {
    if (!prompt) return;
    prompt.prompt();
    await prompt.userChoice;
    prompt = null;
    $('install').hidden = true;
  });
  addEventListener('appinstalled', () => { $('install').hidden = true; });
}

async function startServiceWorker() {
  try {
    const registration = await registerServiceWorker({
      onUpdateReady: () => {
        $('update-banner').hidden = false;
        document.body.dataset.update = 'ready';
      },
      onInstallFailed: (message) => {
        document.body.dataset.offlineError = message;
        if (navigator.serviceWorker.controller) {
          showError(new Error(message), 'A new version could not be saved (this one keeps working offline): ');
        } else {
          document.body.dataset.offline = 'failed';
          showError(new Error(message), 'Could not save the app for offline use: ');
        }
      },
    });
    $('update-reload').addEventListener('click', () => applyUpdate(registration));
    document.body.dataset.offline = registration ? 'ready' : 'unsupported';
  } catch (error) {
    document.body.dataset.offline = 'failed';
    showError(error, 'Offline use is unavailable: ');
  }
}

addEventListener('hashchange', onRoute);
watchRemoteChanges();
watchDatabaseVersion();
watchNetwork();
offerInstall();
onRoute();
startServiceWorker();
startSync();
watchServerJobs();
