// The Sync screen: the server and the account (create, sign in, sign out, delete), "Sync now", and
// per project a switch (off until turned on here) with its state — synced, changes waiting, the last
// error with a retry — and the date the server deletes its copy unless the project changes.
import * as tejas from '../../tejas.js';
import { append, busy, confirmDialog, field, h, plural, showError, toast } from './dom.js';

const dateOf = (iso) => new Date(iso).toLocaleDateString(undefined, { year: 'numeric', month: 'long', day: 'numeric' });
const timeOf = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export async function render(view) {
  const account = h('section', { class: 'card', 'aria-labelledby': 'account-title' });
  const overall = h('section', { class: 'card', 'aria-labelledby': 'sync-title' });
  const list = h('ul', { class: 'sync-projects', 'aria-label': 'Projects to sync' });
  append(view,
    h('h1', {}, 'Sync'),
    h('p', { class: 'muted intro' }, 'Keep chosen projects in step between your devices through a Tejas server. Nothing is sent '
      + 'until you sign in and switch sync on for a project; ', h('a', { href: '#/about' }, 'About & privacy'),
    ' says exactly what is sent and how long the server keeps it.'),
    account, overall,
    h('section', { class: 'card', 'aria-labelledby': 'projects-title' }, h('h2', { id: 'projects-title' }, 'Projects'), list));
  let status = null;
  let accountShown = null;
  const newest = new Map();  // status source (a tab's sync worker) → the highest seq shown
  const show = (next) => {
    // replies and announcements travel apart: one computed before a change can arrive after one
    // computed after it, and must not put the older state back on screen
    if (next.seq <= (newest.get(next.source) ?? 0)) return;
    newest.set(next.source, next.seq);
    status = next;
    view.dataset.signedIn = String(status.signedIn);
    // the account form is rebuilt only when signing in or out, so typing is never interrupted
    if (accountShown !== status.signedIn) {
      accountShown = status.signedIn;
      account.replaceChildren(...(status.signedIn ? signedIn(status, show) : signInForm(status, show)));
    }
    account.querySelector('#account-usage')?.replaceChildren(...usageItems(status.usage));
    overall.replaceChildren(...overallStatus(status, show));
    list.replaceChildren(...(status.projects.length
      ? status.projects.map((p) => projectRow(p, status, show))
      : [h('li', { class: 'empty' }, 'No projects on this device yet.')]));
  };
  const stop = tejas.onSyncStatus(show);  // before the first read, so no announcement falls in between
  try {
    show(await tejas.syncStatus());
  } catch (error) {
    stop();
    throw error;
  }
  return stop;
}

function signInForm(status, show) {
  const server = field('Server address', h('input', { type: 'url', required: true, value: status.server ?? location.origin, autocomplete: 'url' }),
    'The address this app came from works when a Tejas server (tejas serve) serves it.');
  const email = field('Email', h('input', { type: 'email', required: true, value: status.email ?? '', autocomplete: 'username' }));
  const password = field('Password', h('input', { type: 'password', required: true, minlength: 8, autocomplete: 'current-password' }),
    'At least 8 characters.');
  const error = h('p', { class: 'error', role: 'alert', id: 'account-error' });
  const go = (create) => async (event) => {
    event.preventDefault();
    const form = event.target.closest('form');
    if (!form.reportValidity()) return;
    const button = create ? createButton : signInButton;
    error.textContent = '';
    try {
      const call = create ? tejas.signUp : tejas.signIn;
      show(await busy(button, create ? 'Creating…' : 'Signing in…',
        () => call(email.input.value, password.input.value, { server: server.input.value })));
      toast(create ? `Account ready; signed in as ${email.input.value}.` : `Signed in as ${email.input.value}.`);
    } catch (e) {
      error.textContent = e.message;
    }
  };
  const signInButton = h('button', { class: 'primary' }, 'Sign in');
  const createButton = h('button', { type: 'button', class: 'secondary', onclick: go(true) }, 'Create account');
  return [
    h('h2', { id: 'account-title' }, 'Account'),
    h('form', { class: 'stack account-form', onsubmit: go(false) }, server.field, email.field, password.field,
      h('div', { class: 'row wrap' }, signInButton, createButton), error),
  ];
}

function signedIn(status, show) {
  const signOut = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    show(await busy(signOut, 'Signing out…', () => tejas.signOut()));
    toast('Signed out. Everything stays on this device.');
  } }, 'Sign out');
  const remove = h('button', { type: 'button', class: 'danger-outline', onclick: async () => {
    const ok = await confirmDialog('Delete your account?', `The server at ${status.server} deletes your account and every project, `
      + 'image and model it holds for it. This device keeps its own copy of everything.', { confirm: 'Delete account' });
    if (!ok) return;
    try {
      show(await busy(remove, 'Deleting…', () => tejas.deleteAccount()));
      toast('Account deleted on the server. Everything stays on this device.');
    } catch (error) { showError(error); }
  } }, 'Delete account…');
  return [
    h('h2', { id: 'account-title' }, 'Account'),
    h('p', { id: 'account-state' }, 'Signed in as ', h('strong', {}, status.email), ` on ${status.server}.`),
    h('ul', { id: 'account-usage', class: 'usage', 'aria-label': 'Your use of this server' }),
    h('div', { class: 'row wrap' }, signOut, remove),
  ];
}

/** Bytes for people in decimal units, as the server's messages write them (1.2 GB, 350 MB, 80 bytes). */
function sizeText(n) {
  for (const [unit, scale] of [['GB', 1e9], ['MB', 1e6], ['kB', 1e3]]) {
    if (n >= scale) {
      const value = n / scale;
      const digits = value < 10 ? 2 : value < 100 ? 1 : 0;
      return `${Number(value.toFixed(digits)).toLocaleString('en-US')} ${unit}`;
    }
  }
  return plural(n, 'byte');
}

/** The account's quotas (GET /api/me `usage`) as list items; the storage one with a meter. */
function usageItems(usage) {
  if (!usage) return [];
  const count = (n) => n.toLocaleString('en-US');
  const item = (name, text, { used, limit }) => h('li', { dataset: { quota: name, full: String(used >= limit) } }, text);
  const { storage_bytes: storage, jobs, streams, stream_images_pending: waiting } = usage;
  return [
    storage && item('storage_bytes', [
      `Stored: ${sizeText(storage.used)} of ${sizeText(storage.limit)} `,
      h('meter', { min: 0, max: storage.limit, value: storage.used, high: storage.limit * 0.9, 'aria-label': 'Storage used' }),
      storage.used >= storage.limit ? ' Full: delete projects or jobs on the server to sync more.' : '',
    ], storage),
    jobs && item('jobs', `Server jobs queued or running: ${count(jobs.used)} of ${count(jobs.limit)}`, jobs),
    streams && item('streams', `Prediction streams: ${count(streams.used)} of ${count(streams.limit)}`, streams),
    waiting && item('stream_images_pending', `Images waiting in streams: ${count(waiting.used)} of ${count(waiting.limit)}`, waiting),
  ].filter(Boolean);
}

function overallStatus(status, show) {
  const waiting = status.projects.filter((p) => p.on).reduce((n, p) => n + p.pending, 0);
  let text;
  if (!status.signedIn) text = 'Not signed in: nothing is sent.';
  else if (status.running) text = progressText(status.progress);
  else if (!status.online) text = `Offline. ${waiting ? `${plural(waiting, 'change')} waiting; ` : ''}they are sent when the network is back.`;
  else if (status.lastError) text = `Last sync failed: ${status.lastError}`;
  else if (status.lastSync) text = `Synced ${timeOf(status.lastSync)}.${waiting ? ` ${plural(waiting, 'change')} waiting.` : ''}`;
  else text = 'Not synced yet.';
  const state = !status.signedIn ? 'signed-out' : status.running ? 'running' : !status.online ? 'offline'
    : status.lastError ? 'error' : waiting ? 'waiting' : 'synced';
  const now = h('button', { type: 'button', class: 'primary', id: 'sync-now', disabled: !status.signedIn || status.running, onclick: () => syncNow(now, show) },
    status.lastError ? 'Retry' : 'Sync now');
  return [
    h('h2', { id: 'sync-title' }, 'Status'),
    h('p', { id: 'sync-status', role: 'status', 'aria-live': 'polite', dataset: { state } }, text),
    h('div', { class: 'row wrap' }, now,
      h('small', { class: 'muted' }, 'Sync also runs by itself a few seconds after a change and every minute while online.')),
  ];
}

async function syncNow(button, show) {
  button.disabled = true;
  try {
    show(await tejas.syncNow());
  } catch {
    show(await tejas.syncStatus());  // the status carries the error and a Retry button
  }
}

function progressText(progress) {
  if (progress?.stage === 'upload') return `Uploading ${progress.done} of ${progress.total}…`;
  if (progress?.stage === 'download') return `Downloading ${progress.done} of ${progress.total}…`;
  if (progress?.stage === 'push') return `Sent ${plural(progress.sent, 'change')}…`;
  return 'Syncing…';
}

function projectRow(project, status, show) {
  const toggle = h('input', {
    type: 'checkbox', role: 'switch', class: 'switch', checked: project.on, disabled: !status.signedIn,
    onchange: async () => {
      toggle.disabled = true;
      try {
        show(await tejas.setProjectSync(project.id, toggle.checked));
      } catch (error) {
        showError(error);
        toggle.checked = !toggle.checked;
        toggle.disabled = false;
      }
    },
  });
  const label = h('label', { class: 'switch-label' }, toggle, 'Sync this project',
    h('span', { class: 'visually-hidden' }, ` (${project.name})`));
  let state = 'off';
  let text = status.signedIn ? 'Stays on this device.' : 'Sign in to sync it.';
  let retry = null;
  if (project.on) {
    // offline, a failed run (one the network dropped, too) is no error to retry: the changes wait
    if (project.pending && status.lastError && status.signedIn && status.online) {
      state = 'error';
      text = `${plural(project.pending, 'change')} waiting. Last error: ${status.lastError}`;
      retry = h('button', { type: 'button', class: 'secondary small', onclick: (e) => syncNow(e.target, show) }, 'Retry');
    } else if (project.pending) {
      state = 'waiting';
      text = `${plural(project.pending, 'change')} waiting.`;
    } else {
      state = status.lastSync ? 'synced' : 'waiting';
      text = status.lastSync ? 'Synced.' : 'Not synced yet.';
    }
  }
  return h('li', { class: 'sync-project', dataset: { projectId: project.id, state } },
    h('div', { class: 'sync-head' }, h('h3', {}, project.name), label),
    h('p', { class: 'project-sync-status', role: 'status' }, text, ' ', retry),
    project.on && project.expires
      ? h('p', { class: 'muted retention' }, `The server deletes this project's copy on ${dateOf(project.expires)} unless it changes.`)
      : null,
    project.notice ? h('p', { class: 'warning' }, project.notice) : null,
    project.on && project.error ? h('p', { class: 'warning' }, project.error) : null);
}
