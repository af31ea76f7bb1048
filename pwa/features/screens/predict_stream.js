// Predict → Live stream (#/p/<id>/predict/stream): a server stream that uses this project's synced model;
// images sent from the device (files, or a camera frame every few seconds) and the results arriving as
// the server's stream workers write them (newest first, the last ROWS kept; all of them paged oldest
// first), with the throughput, the lag and the dead letters. Signed out or not synced: one line to Sync.
import * as tejas from '../../tejas.js';
import * as api from '../streams/api.js';
import { createSender, followStream } from '../streams/live.js';
import { createWebcam } from './webcam.js';
import { append, busy, confirmDialog, fileStem, filePicker, h, panelToggle, percent, plural, showError, toast } from './dom.js';

const ROWS = 200; // rows kept in the live table
const PAGE = 50; // rows per page of "All results"
const FLUSH_MS = 150; // arriving rows are drawn at most this often

const CONNECTION = {
  connecting: 'Connecting to the stream…',
  live: 'Live: results appear as the server\'s workers write them.',
  offline: 'Offline: reconnects when the network returns.',
  unreachable: 'Server unreachable — retrying…',
  'no-redis': 'Streaming needs Redis on the server.',
  gone: 'This stream no longer exists on the server.',
  'signed-out': 'Signed out: sign in again on the Sync screen to follow this stream.',
  refused: 'The server refused: ',
};
const WAITING = { offline: 'offline', unreachable: 'server unreachable — retrying', 'no-redis': 'the server has no Redis — retrying' };

const ms = (value) => (value === null || value === undefined ? '—' : `${Math.round(value)} ms`);

/** A results table: caption, header and an empty body; returns {element, tbody}. */
function resultsTable(id, caption) {
  const tbody = h('tbody');
  const element = h('div', { class: 'table-scroll many-scroll stream-scroll', tabindex: 0, role: 'region', 'aria-label': caption },
    h('table', { class: 'many-table stream-table', id },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, ['Image key', 'Class', 'Confidence', 'Worker', 'Latency'].map((label, i) =>
        h('th', { scope: 'col', class: i === 2 || i === 4 ? 'num' : null }, label)))),
      tbody));
  return { element, tbody };
}

function resultRow(r) {
  return h('tr', { dataset: { id: r.id, key: r.key, class: r.class, confidence: r.confidence } },
    h('th', { scope: 'row', class: 'file' }, r.key), h('td', {}, r.class),
    h('td', { class: 'num' }, percent(r.confidence, 1)), h('td', { class: 'worker' }, r.worker),
    h('td', { class: 'num' }, ms(r.latency_ms)));
}

export async function render(view, { project, status }) {
  const sync = await tejas.syncStatus().catch(() => null);
  const synced = sync?.projects?.find((p) => p.id === project.id);
  if (!sync?.signedIn || !synced?.on) {
    view.append(h('section', { class: 'card', id: 'stream-unavailable' }, h('p', {},
      'A live stream runs on your server: sign in and switch sync on for this project on the ',
      h('a', { href: '#/sync' }, 'Sync screen'), ', so the server has its trained model.')));
    return null;
  }
  const model = api.projectModel(project.id);
  const numClasses = status.model.classes.length;
  const state = { name: null, follower: null, sender: null, lastId: 0, buffer: [], flush: null, stats: null, dead: -1 };
  const root = h('div', { class: 'stream-view', id: 'stream-view', dataset: { connection: 'idle', rows: '0', stats: '0' } });

  // Choosing and creating streams
  const pick = h('select', { id: 'stream-pick' }, h('option', { value: '' }, 'Loading…'));
  const nameInput = h('input', { type: 'text', id: 'stream-name', required: true, maxlength: 100, pattern: api.STREAM_NAME_PATTERN,
    value: `${fileStem(project.name).toLowerCase().replace(/^[.]+/, '') || 'project'}-live`.slice(0, 100), autocomplete: 'off',
    'aria-describedby': 'stream-name-hint' });
  const topK = h('select', { id: 'stream-topk' },
    Array.from({ length: Math.min(5, numClasses) }, (_, i) => h('option', { value: i + 1, selected: i + 1 === Math.min(3, numClasses) }, String(i + 1))));
  const create = h('button', { class: 'primary', id: 'stream-create' }, 'Create stream');
  const form = h('form', { class: 'row wrap stream-create', id: 'stream-form' },
    h('div', { class: 'field' }, h('label', { for: 'stream-name' }, 'New stream'), nameInput),
    h('div', { class: 'field' }, h('label', { for: 'stream-topk' }, 'Classes kept'), topK), create);
  const remove = h('button', { type: 'button', class: 'danger-outline', id: 'stream-delete', disabled: true }, 'Delete stream');
  const modelNote = h('p', { id: 'stream-model', class: 'muted' });
  const connection = h('p', { id: 'stream-connection', role: 'status', 'aria-live': 'polite' });
  const redis = h('p', { class: 'error', id: 'stream-redis', role: 'alert', hidden: true });
  const waitNote = synced.pending ? h('p', { class: 'warning' }, `${plural(synced.pending, 'change')} of this project wait to sync: the server uses the model it last received.`) : null;

  // Sending
  const sendStatus = h('p', { id: 'stream-send-status' }); // not live: `announce` says when a batch is all sent
  const sendFailed = h('ul', { id: 'stream-send-failed', class: 'error-list' });
  const files = filePicker('Images to send to the stream', { accept: 'image/*', multiple: true, id: 'stream-files' },
    (picked) => state.sender?.add(picked.map((file) => ({ blob: file, key: file.name || `image-${crypto.randomUUID()}` }))));
  const choose = h('button', { type: 'button', class: 'primary', id: 'stream-choose', disabled: true, onclick: () => files.click() }, 'Send images…');
  const webcam = createWebcam();
  const seconds = h('input', { type: 'number', id: 'stream-every', min: 1, max: 3600, step: 1, value: 2, inputmode: 'numeric' });
  const frames = h('button', { type: 'button', class: 'secondary', id: 'stream-frames', 'aria-pressed': 'false', disabled: true }, 'Send a frame every');
  const cameraPanel = h('div', { class: 'panel', id: 'stream-camera', hidden: true }, webcam.element,
    h('div', { class: 'row wrap' }, frames, h('label', { class: 'row' }, seconds, h('span', {}, 'seconds'))));

  // Figures, live rows, all results, dead letters
  const figure = (id, label) => h('div', {}, h('dt', {}, label), h('dd', { id }, '—'));
  const figures = h('dl', { class: 'stream-figures', id: 'stream-figures' }, figure('stream-rate', 'Images/s'), figure('stream-pending', 'Pending (lag)'),
    figure('stream-p50', 'Latency p50'), figure('stream-p95', 'Latency p95'), figure('stream-workers', 'Live workers'), figure('stream-dead-count', 'Dead letters'));
  const announce = h('p', { class: 'visually-hidden', role: 'status', 'aria-live': 'polite', id: 'stream-announce' });
  const live = resultsTable('stream-table', 'Results as they arrive, newest first');
  const liveHint = h('p', { class: 'hint', id: 'stream-live-hint' });
  const history = resultsTable('stream-history', 'All results, oldest first');
  const historyText = h('span', { id: 'stream-history-page' });
  const first = h('button', { type: 'button', class: 'secondary small', id: 'stream-history-first' }, 'First page');
  const next = h('button', { type: 'button', class: 'secondary small', id: 'stream-history-next', disabled: true }, 'Next page');
  const historyBox = h('details', { id: 'stream-all' }, h('summary', {}, 'All results (oldest first)'), history.element,
    h('div', { class: 'row wrap pager' }, first, historyText, next));
  const deadList = h('ul', { id: 'stream-dead', class: 'dead-letters' });
  const body = h('div', { id: 'stream-body', hidden: true },
    h('section', { class: 'card', 'aria-labelledby': 'stream-send-title' },
      h('h2', { id: 'stream-send-title' }, 'Send images'),
      h('div', { class: 'row wrap' }, choose, files, panelToggle('Camera', cameraPanel, { onClose: () => { stopFrames(); webcam.stop(); } })),
      cameraPanel, sendStatus, sendFailed),
    h('section', { class: 'card', 'aria-labelledby': 'stream-results-title' },
      h('h2', { id: 'stream-results-title' }, 'Results'), figures, announce, liveHint, live.element, historyBox),
    h('section', { class: 'card', 'aria-labelledby': 'stream-dead-title' },
      h('h2', { id: 'stream-dead-title' }, 'Dead letters'),
      h('p', { class: 'hint' }, 'Images the workers could not classify, with the reason.'), deadList));
  append(root, waitNote, h('section', { class: 'card', 'aria-labelledby': 'stream-title' },
    h('h2', { id: 'stream-title' }, 'Stream'),
    h('p', {}, 'A stream on your server classifies the images sent to it with this project\'s model (as last synced); '
      + 'its results stay there for everyone signed in to your account.'),
    h('div', { class: 'row wrap' }, h('label', { for: 'stream-pick' }, 'Stream'), pick, remove),
    modelNote, form, h('small', { class: 'hint', id: 'stream-name-hint' }, 'Letters, digits, ".", "_" and "-"; up to 100.'),
    connection, redis), body);
  view.append(root);

  const showConnection = (value, error = null) => {
    root.dataset.connection = value;
    connection.textContent = value === 'refused' ? `${CONNECTION.refused}${error?.message ?? ''}` : (CONNECTION[value] ?? '');
    if (value === 'no-redis') showRedis(error);
  };
  const showRedis = (error) => {
    redis.hidden = false;
    redis.textContent = `Streaming needs Redis on the server. ${error?.message ?? 'It does not answer there now.'}`;
    root.dataset.redis = 'missing';
  };
  const hideRedis = () => { redis.hidden = true; delete root.dataset.redis; };
  const failed = (error, prefix) => {
    if (api.noRedis(error)) showRedis(error);
    else if (error.status !== 0) showError(error, prefix);
    else if (!state.follower) showConnection(navigator.onLine ? 'unreachable' : 'offline'); // else the follower says so
  };

  // Rows arriving: drawn a few times a second, newest first, at most ROWS kept
  const flush = () => {
    state.flush = null;
    const rows = state.buffer.splice(0).reverse();
    live.tbody.prepend(...rows.map(resultRow));
    while (live.tbody.rows.length > ROWS) live.tbody.lastElementChild.remove();
    root.dataset.rows = String(live.tbody.rows.length);
  };
  const showStats = (s) => {
    const was = state.stats;
    state.stats = s;
    root.dataset.stats = String(Number(root.dataset.stats) + 1);
    root.dataset.pending = s.pending === null ? 'unknown' : String(s.pending);
    root.dataset.rate = String(s.images_per_second);
    const set = (id, text) => { figures.querySelector(`#${id}`).textContent = text; };
    set('stream-rate', s.images_per_second.toFixed(1));
    set('stream-pending', s.pending === null ? 'unknown' : String(s.pending));
    set('stream-p50', ms(s.latency_p50_ms));
    set('stream-p95', ms(s.latency_p95_ms));
    set('stream-workers', String(s.workers));
    set('stream-dead-count', s.dead === null ? 'unknown' : String(s.dead));
    if (s.pending === null) showRedis(null);
    else hideRedis();
    // announced: only what changes what the user should do or expect, never every figure every 2 s
    if (was?.pending > 0 && s.pending === 0) announce.textContent = `All caught up: ${plural(s.predicted, 'result')}.`;
    else if (s.workers === 0 && was?.workers !== 0) announce.textContent = 'No stream worker is running on the server: images wait.';
    if (s.dead !== null && s.dead !== state.dead) loadDead();
  };
  const onEvent = ({ event, data }) => {
    if (event === 'stats') showStats(data);
    if (event !== 'prediction' || data.id <= state.lastId) return; // ids grow: a replayed one is not shown twice
    state.lastId = data.id;
    state.buffer.push(data);
    state.flush ??= setTimeout(flush, FLUSH_MS);
  };
  const loadDead = async () => {
    if (!state.name) return;
    const name = state.name;
    try {
      const entries = await api.deadLetters(await api.account(), name);
      if (state.name !== name) return;
      state.dead = entries.length;
      deadList.replaceChildren(...(entries.length ? entries.map((d) => h('li', {},
        h('strong', {}, d.key), `: ${d.error.startsWith(`${d.key}: `) ? d.error.slice(d.key.length + 2) : d.error}`, h('small', { class: 'muted' }, ` (${plural(d.deliveries, 'delivery', 'deliveries')}${d.at ? `, ${new Date(d.at).toLocaleString()}` : ''})`)))
        : [h('li', { class: 'muted' }, 'None.')]));
    } catch (error) {
      if (api.noRedis(error)) showRedis(error);
    }
  };

  // All results, a page at a time (oldest first)
  const pages = { after: [0], more: false };
  const loadPage = async (after) => {
    const answer = await api.results(await api.account(), state.name, { after, limit: PAGE });
    history.tbody.replaceChildren(...answer.results.map(resultRow));
    pages.more = answer.more;
    pages.next = answer.next;
    next.disabled = !answer.more;
    historyText.textContent = answer.results.length ? `Page ${pages.after.length}` : 'No results yet.';
  };
  historyBox.addEventListener('toggle', () => { if (historyBox.open) { pages.after = [0]; loadPage(0).catch((e) => failed(e, 'Could not read the results: ')); } });
  first.addEventListener('click', () => { pages.after = [0]; loadPage(0).catch((e) => failed(e, 'Could not read the results: ')); });
  next.addEventListener('click', () => { pages.after.push(pages.next); loadPage(pages.next).catch((e) => failed(e, 'Could not read the results: ')); });

  const showSend = (c) => {
    const parts = [`Sent ${c.sent}`];
    if (c.duplicates) parts.push(`${c.duplicates} already in the stream`);
    if (c.queued || c.sending) parts.push(`${c.queued + c.sending} to send${c.waiting ? `: ${WAITING[c.waiting]}` : ''}`);
    sendStatus.textContent = `${parts.join(' · ')}.`;
    if (c.queued + c.sending === 0 && Number(root.dataset.toSend) > 0) announce.textContent = `All sent: ${sendStatus.textContent}`;
    root.dataset.sent = String(c.sent);
    root.dataset.toSend = String(c.queued + c.sending);
    if (c.waiting === 'no-redis') showRedis(null);
    sendFailed.replaceChildren(...c.failed.slice(-20).map((f) => h('li', {}, `${f.key}: ${f.reason}`)));
  };

  const close = () => {
    state.follower?.stop();
    state.sender?.stop();
    clearTimeout(state.flush);
    Object.assign(state, { name: null, follower: null, sender: null, lastId: 0, buffer: [], flush: null, stats: null, dead: -1 });
    body.hidden = true;
    remove.disabled = choose.disabled = frames.disabled = true;
    stopFrames();
    live.tbody.replaceChildren();
    deadList.replaceChildren();
    history.tbody.replaceChildren();
    historyBox.open = false;
    modelNote.replaceChildren();
    root.dataset.rows = '0';
    root.dataset.stats = '0';
    delete root.dataset.stream;
    delete root.dataset.pending;
  };

  /** A long stream: its newest results first (one page), then its events after the newest of them. */
  const followNewest = async (name) => {
    let after = null; // the server unreachable now: follow new results; the newest come with the history
    try {
      const page = await api.results(await api.account(), name, { newest: true, limit: ROWS });
      if (state.name !== name) return;
      page.results.slice().reverse().forEach((data) => onEvent({ event: 'prediction', data }));
      after = page.next;
    } catch (error) {
      if (state.name !== name) return;
    }
    state.follower = followStream(name, { after, onEvent, onState: showConnection });
  };

  /** Follow stream `summary.name`: its events (replayed from the start when it is small), a sender, its dead letters. */
  const open = (summary) => {
    close();
    state.name = summary.name;
    root.dataset.stream = summary.name;
    pick.value = summary.name;
    body.hidden = false;
    remove.disabled = choose.disabled = false;
    frames.disabled = !webcam.started();
    const replay = summary.predicted <= ROWS;
    liveHint.textContent = replay ? '' : `Showing the ${ROWS} newest of ${plural(summary.predicted, 'result')}; all of them are under "All results".`;
    modelNote.replaceChildren(summary.model === model ? 'Uses this project\'s model.' : `Uses another model (${summary.model}). `,
      summary.model === model ? '' : h('button', { type: 'button', class: 'link', id: 'stream-use-model', onclick: (e) => busy(e.target, 'Switching…',
        () => api.account().then((c) => api.putStream(c, summary.name, { model, topK: summary.top_k }))
          .then(() => { modelNote.textContent = 'Uses this project\'s model from the next image on.'; }, (error) => failed(error, 'Could not switch the model: '))) },
      'Use this project\'s model'));
    state.sender = createSender(summary.name, { onChange: showSend });
    showSend(state.sender.counts());
    if (replay) state.follower = followStream(summary.name, { after: 0, onEvent, onState: showConnection });
    else followNewest(summary.name);
    loadDead();
  };

  let streams = [];
  const refresh = async (select = null) => {
    try {
      streams = await api.listStreams(await api.account());
      hideRedis();
    } catch (error) {
      failed(error, 'Could not list your streams: ');
      if (!streams.length) pick.replaceChildren(h('option', { value: '' }, 'Unavailable'));
      return;
    }
    pick.replaceChildren(h('option', { value: '' }, streams.length ? 'Choose a stream…' : 'No streams yet'),
      ...streams.map((s) => h('option', { value: s.name }, `${s.name}${s.model === model ? '' : ' (another model)'}`)));
    const chosen = streams.find((s) => s.name === (select ?? state.name)) ?? (state.name ? null : streams.find((s) => s.model === model));
    if (chosen && chosen.name !== state.name) open(chosen);
    else if (!chosen) close();
    pick.value = state.name ?? '';
  };
  pick.addEventListener('change', () => {
    const chosen = streams.find((s) => s.name === pick.value);
    if (chosen) open(chosen);
    else close();
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    const name = nameInput.value.trim();
    const existing = streams.find((s) => s.name === name);
    if (existing?.model === model) { if (state.name !== name) open(existing); return; }
    busy(create, 'Creating…', async () => {
      if (existing && !await confirmDialog(`Switch "${name}" to this project's model?`,
        `You already have a stream "${name}" (using ${existing.model}); from its next image on it would use this project's model.`,
        { confirm: 'Switch model', danger: false })) return;
      try {
        await api.putStream(await api.account(), name, { model, topK: Number(topK.value) });
        toast(`Stream "${name}" uses this project's model.`);
        await refresh(name);
      } catch (error) {
        failed(error, `Could not create "${name}": `);
      }
    });
  });
  remove.addEventListener('click', async () => {
    const name = state.name;
    if (!name || !await confirmDialog(`Delete the stream "${name}"?`,
      'Its results and dead letters are deleted on the server, and images still waiting there are dropped. This cannot be undone.')) return;
    await busy(remove, 'Deleting…', async () => {
      try {
        await api.deleteStream(await api.account(), name);
        toast(`Stream "${name}" deleted.`);
        close();
        await refresh();
      } catch (error) {
        failed(error, `Could not delete "${name}": `);
      }
    });
  });

  // A camera frame every N seconds while the toggle is on
  let sending = null;
  function stopFrames() {
    clearTimeout(sending);
    sending = null;
    frames.setAttribute('aria-pressed', 'false');
  }
  const observer = new MutationObserver(() => {
    frames.disabled = !state.name || !webcam.started();
    if (!webcam.started()) stopFrames();
  });
  observer.observe(webcam.element, { attributes: true, attributeFilter: ['data-camera'] });
  let frameCount = 0;
  const sendFrame = async () => {
    const blob = await webcam.frame();
    if (blob && sending !== null) state.sender?.add([{ blob, key: `camera-${new Date().toISOString()}-${++frameCount}` }]);
    if (sending !== null) sending = setTimeout(sendFrame, Math.max(1, Number(seconds.value) || 1) * 1000);
  };
  frames.addEventListener('click', () => {
    if (sending !== null) { stopFrames(); return; }
    frames.setAttribute('aria-pressed', 'true');
    sending = 0;
    sendFrame();
  });

  const back = () => refresh();
  addEventListener('online', back);
  await refresh();
  return () => {
    removeEventListener('online', back);
    observer.disconnect();
    close();
    webcam.stop();
  };
}
