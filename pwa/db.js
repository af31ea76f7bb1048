// IndexedDB storage with numbered migrations. Samples are content-addressed (sha256 of the bytes);
// every write appends to a per-database change log (deletes too, as tombstones) so a later sync
// server can replicate a project. A write that hits the quota fails alone, with a clear message.

export const DB_NAME = 'tejas';

// One function per version; never edit a shipped one, append a new one. (Exported so a test can build
// a database exactly as an older version made it.)
export const MIGRATIONS = [
  (db) => {
    db.createObjectStore('projects', { keyPath: 'id' });
    db.createObjectStore('classes', { keyPath: 'id' }).createIndex('project', 'projectId');
    const samples = db.createObjectStore('samples', { keyPath: ['projectId', 'contentId'] });
    samples.createIndex('project', 'projectId');
    samples.createIndex('class', ['projectId', 'classId']);
    samples.createIndex('content', 'contentId');
    // Image bytes and thumbnails, shared by every project holding the same image.
    db.createObjectStore('blobs', { keyPath: 'contentId' });
    db.createObjectStore('embeddings', { keyPath: ['contentId', 'backboneId', 'augmentationId'] });
    db.createObjectStore('models', { keyPath: 'id' }).createIndex('project', 'projectId');
    db.createObjectStore('changes', { keyPath: 'seq', autoIncrement: true }).createIndex('project', 'projectId');
  },
  // 2: embeddings findable by image, so deleting the last sample of an image deletes its embeddings in
  // the same transaction; sweeps what version 1 left behind (bytes and embeddings of images no sample
  // holds, models of deleted projects).
  (db, tx) => {
    tx.objectStore('embeddings').createIndex('content', 'contentId');
    sweepOrphans(tx);
  },
];

/** Delete blobs and embeddings no sample refers to, and models whose project is gone (in `tx`). */
function sweepOrphans(tx) {
  const deleteWhere = (store, keep) => {
    store.openCursor().onsuccess = (event) => {
      const cursor = event.target.result;
      if (!cursor) return;
      if (!keep(cursor.value)) cursor.delete();
      cursor.continue();
    };
  };
  tx.objectStore('samples').getAll().onsuccess = (event) => {
    const used = new Set(event.target.result.map((s) => s.contentId));
    deleteWhere(tx.objectStore('blobs'), (b) => used.has(b.contentId));
    deleteWhere(tx.objectStore('embeddings'), (e) => used.has(e.contentId));
  };
  tx.objectStore('projects').getAllKeys().onsuccess = (event) => {
    const projects = new Set(event.target.result);
    deleteWhere(tx.objectStore('models'), (m) => projects.has(m.projectId));
  };
}

export class StorageFullError extends Error {
  constructor(what) {
    super(`Storage is full: could not save ${what}. Delete projects or samples to make room; nothing saved before was lost.`);
    this.name = 'QuotaExceededError';
  }
}

const request = (req) => new Promise((resolve, reject) => {
  req.onsuccess = () => resolve(req.result);
  req.onerror = () => reject(req.error);
});

let opened = null;

/** The database, opened (and migrated) once per page or worker. */
export function openDatabase(name = DB_NAME) {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(name, MIGRATIONS.length);
    req.onupgradeneeded = (event) => {
      for (let v = event.oldVersion; v < MIGRATIONS.length; v++) MIGRATIONS[v](req.result, req.transaction);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error('Tejas is open in another tab with an older version; close it and reload.'));
  });
  return opened;
}

/**
 * Run `work(stores)` in one transaction over `names`; resolves with its result once committed.
 * `what` names the data for the error a full disk gives.
 */
export async function transaction(names, mode, work, what = 'your change') {
  const db = await openDatabase();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(names, mode);
    const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
    let result;
    const fail = (error) => reject(error?.name === 'QuotaExceededError' ? new StorageFullError(what) : error);
    tx.oncomplete = () => resolve(result);
    tx.onabort = () => fail(tx.error);
    tx.onerror = () => {};  // onabort follows with the same error
    Promise.resolve()
      .then(() => work(stores))
      .then((value) => { result = value; }, (error) => { try { tx.abort(); } catch { /* already done */ } fail(error); });
  });
}

export const get = (store, key) => request(store.get(key));
export const getAll = (store, query) => request(store.getAll(query));
export const getAllFromIndex = (store, index, query) => request(store.index(index).getAll(query));
export const put = (store, value) => request(store.put(value));
export const count = (store, query) => request(store.count(query));
export const countFromIndex = (store, index, query) => request(store.index(index).count(query));
export const getAllKeysFromIndex = (store, index, query) => request(store.index(index).getAllKeys(query));
export const remove = (store, key) => request(store.delete(key));

/** Append to the change log: {projectId, op: 'put'|'delete', store, key, at}. */
export function logChange(changes, projectId, op, store, key) {
  return put(changes, { projectId, op, store, key, at: new Date().toISOString() });
}

/** Ask the browser not to evict our data; resolves to whether it agreed. */
export async function requestPersistence() {
  if (!navigator.storage?.persist) return false;
  return (await navigator.storage.persisted()) || navigator.storage.persist();
}

/** {persisted, usage, quota} of this origin's storage (bytes; null where the browser does not say). */
export async function storageStatus() {
  const estimate = (await navigator.storage?.estimate?.()) ?? {};
  const persisted = (await navigator.storage?.persisted?.()) ?? false;
  return { persisted, usage: estimate.usage ?? null, quota: estimate.quota ?? null };
}
