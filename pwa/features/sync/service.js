// What the sync worker does, one function per request: the account (sign up, in, out, delete), a
// project's sync switch, one sync run (push, then pull), and the status the Sync screen shows.
// Nothing is sent unless signed in, and then only the records of projects whose sync is on.
import { getAll, transaction } from '../../db.js';
import * as api from './api.js';
import { pullAll } from './pull.js';
import { pushAll } from './push.js';
import { pendingCounts, setProjectSync } from './queue.js';
import { getMeta, projectSettings, putMeta, readMeta, updateMeta } from './settings.js';

/** Days the server keeps a project after its last change when it does not say (docs/sync.md). */
export const DEFAULT_RETENTION_DAYS = 30;

const normalise = (server) => String(server ?? '').trim().replace(/\/+$/, '');

/** Sign up (`create`) or in; the token is kept in IndexedDB. Signing in as another account than the
 * last one switches every project's sync off: nothing of one account goes to another unasked. */
export async function signIn({ server, email, password, create = false }) {
  server = normalise(server);
  if (!/^https?:\/\/[^\s/]+/.test(server)) throw new api.SyncError(`"${server}" is not a server address (like https://example.org)`);
  const answer = await (create ? api.signUp : api.signIn)(server, String(email).trim(), password);
  const profile = await api.me(server, answer.token).catch(() => ({}));
  await transaction(['meta'], 'readwrite', async ({ meta }) => {
    const cursor = await getMeta(meta, 'cursor');
    if (cursor && cursor.userId !== answer.user.id) {
      for (const [projectId, setting] of Object.entries(await projectSettings(meta))) {
        if (setting.on) await putMeta(meta, `sync:${projectId}`, { ...setting, on: false });
      }
    }
    if (cursor?.userId !== answer.user.id) await putMeta(meta, 'cursor', { userId: answer.user.id, value: '0' });
    await putMeta(meta, 'account', {
      server, token: answer.token, expires: answer.expires, userId: answer.user.id, email: answer.user.email,
      retentionDays: profile.retention_days ?? null,
    });
    await putMeta(meta, 'status', { lastSync: null, lastError: null });
    await putMeta(meta, 'usage', { usage: profile.usage ?? null });
  });
  return status();
}

/** Sign out: the server revokes the token (when reachable); everything on this device stays. */
export async function signOut() {
  const { account } = await readMeta('account');
  if (account?.token) await api.signOut(account.server, account.token).catch(() => null);
  await updateMeta('account', (old) => (old ? { server: old.server, email: old.email } : null));
  return status();
}

/** Delete the account on the server (everything it holds of it); this device keeps its data. */
export async function deleteAccount() {
  const { account } = await readMeta('account');
  if (!account?.token) throw new api.SyncError('Sign in first.');
  await api.deleteAccount(account.server, account.token);
  await transaction(['meta'], 'readwrite', async ({ meta }) => {
    for (const [projectId, setting] of Object.entries(await projectSettings(meta))) {
      await putMeta(meta, `sync:${projectId}`, { ...setting, on: false });
    }
    await putMeta(meta, 'account', { server: account.server });
    await putMeta(meta, 'cursor', { userId: null, value: '0' });
  });
  return status();
}

export { setProjectSync };

/**
 * One run: push what is queued, then pull what changed elsewhere. Resolves with the status; rejects
 * (with the status's lastError) when the server could not be reached or refused; nothing is lost then.
 */
export async function syncOnce({ onProgress } = {}) {
  const { account, device } = await readMeta('account', 'device');
  if (!account?.token) return status();
  const settings = await projectSettings();
  const synced = new Set(Object.keys(settings).filter((id) => settings[id].on));
  const args = { server: account.server, token: account.token, userId: account.userId, device: device.value, onProgress };
  try {
    await pushAll({ ...args, synced });
    await pullAll(args);
    await updateMeta('status', () => ({ lastSync: new Date().toISOString(), lastError: null }));
    await refreshUsage(account);
  } catch (error) {
    const expired = error.status === 401;
    const message = expired ? 'The server no longer accepts this sign-in (expired or revoked); sign in again.' : error.message;
    if (expired) await updateMeta('account', (old) => ({ server: old.server, email: old.email }));
    else await refreshUsage(account);  // a full quota is when the screen must show it
    await updateMeta('status', (old) => ({ ...old, lastError: message, failedAt: new Date().toISOString() }));
    throw Object.assign(new Error(message), { name: 'SyncError' });
  }
  return status();
}

/** The account's quotas as the server counts them now (GET /api/me `usage`), kept for the Sync screen; a
 * server that does not answer or has no quotas leaves what was there. */
async function refreshUsage(account) {
  const profile = await api.me(account.server, account.token).catch(() => null);
  if (profile?.usage) await updateMeta('usage', () => ({ usage: profile.usage }));
}

let statusSeq = 0;
/** Which worker numbered a status: every tab runs its own sync worker, and all of them announce. */
const STATUS_SOURCE = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

/**
 * {server, signedIn, email, retentionDays, lastSync, lastError, failedAt, usage, projects: [{id, name, on,
 * pending, expires, notice, error}], source, seq}: what the Sync screen shows, read from this device.
 * `usage`: the account's quotas at the last sign-in or sync ({storage_bytes, jobs, streams,
 * stream_images_pending: {used, limit}}, GET /api/me), or null.
 * `notice`: why sync was switched off by the server's side; `error`: a record the server refused.
 * `seq` grows with every call in this worker, and everything is read in one transaction opened in that
 * order, so of two statuses from one `source` the higher `seq` never shows an older state (the screen
 * drops the other: a status computed before a change can arrive after one computed after it).
 */
export async function status() {
  const seq = ++statusSeq;  // before the transaction below is opened: calls open theirs in this order
  const read = await transaction(['meta', 'projects', 'changes'], 'readonly', async ({ meta, projects, changes }) => {
    const [account, last, retention, settings, all, entries, usage] = await Promise.all([
      getMeta(meta, 'account'), getMeta(meta, 'status'), getMeta(meta, 'retention'), projectSettings(meta),
      getAll(projects), getAll(changes), getMeta(meta, 'usage')]);
    return { account, last, retention, settings, all, entries, usage };
  });
  const { account, last, retention, settings } = read;
  const synced = new Set(Object.keys(settings).filter((id) => settings[id].on));
  const pending = pendingCounts(read.entries, synced);
  return {
    server: account?.server ?? null,
    signedIn: Boolean(account?.token),
    email: account?.email ?? null,
    retentionDays: account?.retentionDays ?? DEFAULT_RETENTION_DAYS,
    lastSync: last?.lastSync ?? null,
    lastError: last?.lastError ?? null,
    failedAt: last?.lastError ? last.failedAt ?? null : null,
    usage: account?.token ? read.usage?.usage ?? null : null,
    projects: read.all.sort((a, b) => a.name.localeCompare(b.name)).map((p) => ({
      id: p.id, name: p.name, on: Boolean(settings[p.id]?.on), pending: pending[p.id] ?? 0,
      expires: retention?.projects?.[p.id]?.expires ?? null, notice: settings[p.id]?.notice ?? null,
      error: settings[p.id]?.error ?? null,
    })),
    source: STATUS_SOURCE,
    seq,
  };
}
