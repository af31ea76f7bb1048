// Sync worker: runs sync (features/sync/service.js) off the page — about 2 s after a change (db.js
// announces committed writes on a BroadcastChannel), every minute, when the network comes back and
// on "Sync now". One run at a time across tabs (a Web Lock); a failed run keeps everything queued and
// is retried a few seconds later, then less often. Its status goes to every tab on SYNC_STATUS_CHANNEL.
import { CHANGES_CHANNEL } from '../db.js';
import { MESSAGE, SYNC_STATUS_CHANNEL, serveRequests } from '../protocol.js';
import * as service from '../features/sync/service.js';

const AFTER_CHANGE_MS = 2000;
const EVERY_MS = 60_000;
// after failed runs in a row (then every minute): the network that just came back often is not usable
// yet (the browser says online before its first request gets through), and a server restarts
const RETRY_MS = [2000, 10_000, 30_000];
const LOCK = 'tejas-sync';

let online = self.navigator.onLine;
let timer = null;
let running = null;
let again = false;
let progress = null;
let failures = 0;
const statusChannel = new BroadcastChannel(SYNC_STATUS_CHANNEL);

async function currentStatus() {
  return { ...(await service.status()), online, running: Boolean(running), progress };
}

async function announce() {
  try {
    statusChannel.postMessage(await currentStatus());
  } catch { /* the database is being upgraded or deleted: the next announcement tells */ }
}

/** One sync run, or the one in progress followed by another (changes may have come in meanwhile). */
function runSync() {
  if (running) {
    again = true;
    return running;
  }
  running = (async () => {
    try {
      do {
        again = false;
        await navigator.locks.request(LOCK, () => service.syncOnce({
          onProgress: (p) => { progress = p; announce(); },
        }));
      } while (again);
      failures = 0;
    } catch (error) {
      failures += 1;
      if (failures <= RETRY_MS.length && !timer) schedule(RETRY_MS[failures - 1]);  // a sooner one stays
      throw error;
    } finally {
      running = null;
      progress = null;
      announce();
    }
  })();
  announce();
  return running;
}

/** Run in `ms` unless offline (a failure is kept in the status; the next trigger retries). */
function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(() => {
    timer = null;
    if (online) runSync().catch(() => {});
  }, ms);
}

new BroadcastChannel(CHANGES_CHANNEL).onmessage = () => {
  announce();
  schedule(AFTER_CHANGE_MS);
};
setInterval(() => {
  if (online && !running) runSync().catch(() => {});
}, EVERY_MS);
self.addEventListener('online', () => { online = true; failures = 0; schedule(0); });
self.addEventListener('offline', () => { online = false; announce(); });
schedule(1000);

serveRequests(self, {
  async [MESSAGE.SYNC_NOW]() {
    if (!online) {
      throw Object.assign(new Error('You are offline: changes wait on this device and are sent when the network is back.'),
        { name: 'SyncError' });
    }
    await runSync();
    return currentStatus();
  },
  [MESSAGE.SYNC_STATUS]: () => currentStatus(),
  async [MESSAGE.SIGN_IN](payload) {
    await service.signIn(payload);
    schedule(0);
    return currentStatus();
  },
  async [MESSAGE.SIGN_OUT]() {
    await running?.catch(() => {});
    await service.signOut();
    announce();
    return currentStatus();
  },
  async [MESSAGE.DELETE_ACCOUNT]() {
    await running?.catch(() => {});
    await service.deleteAccount();
    announce();
    return currentStatus();
  },
  async [MESSAGE.SET_PROJECT_SYNC]({ projectId, on }) {
    // under the lock: a run in progress must not push half of a snapshot's entries
    await navigator.locks.request(LOCK, () => service.setProjectSync(projectId, on));
    if (on) schedule(0);
    announce();
    return currentStatus();
  },
  [MESSAGE.SET_ONLINE]({ online: now }) {
    const cameBack = now && !online;
    online = now;
    if (cameBack) {
      failures = 0;  // what failed offline says nothing about the network that is back
      schedule(0);
    }
    announce();
    return online;
  },
});
