// A stream as the app follows it: its events read live and read again after a cut (Last-Event-ID,
// backing off; waiting for the network when offline), and images sent to it from a queue that keeps
// what the server could not take yet and sends it when the server answers again.
import * as api from './api.js';

const MAX_DELAY_MS = 15_000;
const SENDERS = 2; // images in flight at once

/** Wait `ms`, or less: the network coming or going, or `signal` aborting, ends the wait at once. */
const pause = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(done, ms);
  function done() {
    clearTimeout(timer);
    removeEventListener('online', done);
    removeEventListener('offline', done);
    signal.removeEventListener('abort', done);
    resolve();
  }
  addEventListener('online', done);
  addEventListener('offline', done);
  signal.addEventListener('abort', done);
});

/** The connection state an error means: 'offline', 'unreachable', 'no-redis', 'gone', 'signed-out' or 'refused'. */
export function connectionOf(error) {
  if (!navigator.onLine) return 'offline';
  if (api.noRedis(error)) return 'no-redis';
  switch (error?.status) {
    case 0: case undefined: case 502: case 504: return 'unreachable';
    case 401: return 'signed-out';
    case 404: case 403: return 'gone';
    default: return 'refused';
  }
}

/**
 * Follow stream `name`'s events until stop(): `onEvent({id, event, data})` per event, `onState(state,
 * error)` as the connection changes ('connecting', 'live', then 'offline' / 'unreachable' while it
 * retries, or 'gone' / 'signed-out' when it gave up). `after`: replay results after this id on the first
 * connection (null: only new results). Reconnections resume after the last event id received.
 */
export function followStream(name, { after = null, onEvent, onState }) {
  const controller = new AbortController();
  const { signal } = controller;
  (async () => {
    let lastEventId = null;
    let delay = 1000;
    onState('connecting');
    while (!signal.aborted) {
      try {
        if (!navigator.onLine) throw new api.SyncError('offline');
        const connection = await api.account();
        await api.readStreamEvents(connection, name, {
          lastEventId, after, signal,
          onOpen: () => { delay = 1000; onState('live'); },
          onEvent: (e) => {
            if (e.id !== null) lastEventId = e.id;
            onEvent(e);
          },
        });
        if (signal.aborted) return;
        onState(navigator.onLine ? 'unreachable' : 'offline');
      } catch (error) {
        if (error.name === 'AbortError' || signal.aborted) return;
        const state = connectionOf(error);
        onState(state, error);
        if (state === 'gone' || state === 'signed-out') return;
      }
      await pause(delay, signal);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  })();
  return { stop: () => controller.abort() };
}

/**
 * A queue of images for stream `name`: add([{blob, key}]) and they are sent, SENDERS at a time. An
 * image the server could not take because it is unreachable or lacks Redis stays queued and is sent again
 * (backing off); one it refused (not an image, too large) goes to `failed` with its reason.
 * `onChange(counts)` gets {queued, sending, sent, duplicates, failed: [{key, reason}], waiting: state|null}.
 */
export function createSender(name, { onChange }) {
  const controller = new AbortController();
  const { signal } = controller;
  const queue = [];
  const counts = { queued: 0, sending: 0, sent: 0, duplicates: 0, failed: [], waiting: null };
  let running = 0;
  let delay = 1000;
  const changed = () => { counts.queued = queue.length; onChange({ ...counts, failed: [...counts.failed] }); };

  async function sendOne(item) {
    try {
      const answer = await api.appendImage(await api.account(), name, item.blob, item.key, { signal });
      if (answer.duplicate) counts.duplicates++;
      else counts.sent++;
      counts.waiting = null;
      delay = 1000;
      return true;
    } catch (error) {
      if (error.name === 'AbortError') return true;
      const state = connectionOf(error);
      if (['offline', 'unreachable', 'no-redis'].includes(state)) {
        queue.unshift(item); // sent again once the server answers
        counts.waiting = state;
        return false;
      }
      counts.failed.push({ key: item.key, reason: error.message });
      return true;
    }
  }

  async function drain() {
    running++;
    try {
      while (queue.length && !signal.aborted) {
        const item = queue.shift();
        counts.sending++;
        changed();
        const ok = await sendOne(item);
        counts.sending--;
        changed();
        if (!ok) {
          await pause(delay, signal);
          delay = Math.min(delay * 2, MAX_DELAY_MS);
        }
      }
    } finally {
      running--;
    }
  }

  return {
    add(items) {
      queue.push(...items);
      changed();
      while (running < SENDERS && running < queue.length) drain();
    },
    counts: () => ({ ...counts, queued: queue.length }),
    stop: () => { controller.abort(); queue.length = 0; },
  };
}
