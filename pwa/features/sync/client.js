// The page's side of sync: starts the sync worker (once per page), tells it when the network comes
// and goes, and forwards the API's calls to it. Status updates arrive on SYNC_STATUS_CHANNEL.
import { MESSAGE, SYNC_STATUS_CHANNEL, callWorker } from '../../protocol.js';
import { worker as pooledWorker } from '../../workers/pool.js';

let worker = null;

function syncWorker() {
  if (!worker) {
    worker = pooledWorker('sync');
    const tell = () => callWorker(worker, MESSAGE.SET_ONLINE, { online: navigator.onLine }).catch(() => {});
    addEventListener('online', tell);
    addEventListener('offline', tell);
    tell();
  }
  return worker;
}

const ask = (type, payload = {}) => callWorker(syncWorker(), type, payload);

/** Start background sync (it sends nothing until signed in and a project's sync is on). */
export const startSync = () => { syncWorker(); };

/** Push queued changes, then pull; resolves with the status, rejects with why it failed (nothing is lost). */
export const syncNow = () => ask(MESSAGE.SYNC_NOW);

/**
 * {server, signedIn, email, retentionDays, lastSync, lastError, failedAt, usage, online, running, progress,
 *  projects: [{id, name, on, pending, expires, notice, error}], source, seq}: of two statuses from one
 *  `source` (a tab's sync worker) the one with the higher `seq` is the newer.
 */
export const syncStatus = () => ask(MESSAGE.SYNC_STATUS);

/** Create an account on `server` (default: this app's own origin) and sign in; resolves with the status. */
export const signUp = (email, password, { server = location.origin } = {}) =>
  ask(MESSAGE.SIGN_IN, { server, email, password, create: true });

/** Sign in to `server` (default: this app's own origin); resolves with the status. */
export const signIn = (email, password, { server = location.origin } = {}) =>
  ask(MESSAGE.SIGN_IN, { server, email, password, create: false });

/** Sign out; everything on this device stays. */
export const signOut = () => ask(MESSAGE.SIGN_OUT);

/** Delete the account and everything the server holds of it; this device keeps its data. */
export const deleteAccount = () => ask(MESSAGE.DELETE_ACCOUNT);

/** Switch a project's sync on or off on this device (off by default); resolves with the status. */
export const setProjectSync = (projectId, on) => ask(MESSAGE.SET_PROJECT_SYNC, { projectId, on: Boolean(on) });

/** Call `listener(status)` on every status the sync worker announces; returns a function that stops it. */
export function onSyncStatus(listener) {
  const channel = new BroadcastChannel(SYNC_STATUS_CHANNEL);
  channel.onmessage = ({ data }) => listener(data);
  return () => channel.close();
}
