// What this device knows about sync, in IndexedDB's `meta` store (workers have no localStorage):
// the account (server address, token), the pull cursor, the last run's outcome, and per project
// whether it syncs (device-local, off by default) with the retention date the server reported.
import { get, getAll, put, remove, transaction } from '../../db.js';

const PROJECT = 'sync:';
const range = (prefix) => IDBKeyRange.bound(prefix, `${prefix}\uffff`);

export const getMeta = async (store, key) => (await get(store, key)) ?? null;
export const putMeta = (store, key, value) => put(store, { ...value, key });

/** Read meta keys in one read-only transaction: {key: value|null}. */
export const readMeta = (...keys) => transaction(['meta'], 'readonly', async ({ meta }) =>
  Object.fromEntries(await Promise.all(keys.map(async (k) => [k, await getMeta(meta, k)]))));

/** Change one meta record: `change(old|null)` returns the new value (null deletes it). */
export const updateMeta = (key, change) => transaction(['meta'], 'readwrite', async ({ meta }) => {
  const value = await change(await getMeta(meta, key));
  if (value === null) await remove(meta, key);
  else await putMeta(meta, key, value);
  return value;
});

/** {projectId: settings} of every project with sync settings ({on, enabledAt, expires, notice, error}). */
export async function projectSettings(meta) {
  const rows = meta
    ? await getAll(meta, range(PROJECT))
    : await transaction(['meta'], 'readonly', ({ meta: m }) => getAll(m, range(PROJECT)));
  return Object.fromEntries(rows.map(({ key, ...value }) => [key.slice(PROJECT.length), value]));
}

export const projectKey = (projectId) => `${PROJECT}${projectId}`;
