// IndexedDB storage with numbered migrations. Samples are content-addressed (sha256 of the bytes);
// every write of a replicable record stamps it with a hybrid-logical-clock revision and appends its
// new state (or a tombstone) to the change log, which the sync worker pushes (docs/sync.md). A write
// that hits the quota fails alone, with a clear message.
import { formatRev, nextClock } from './clock.js';

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
  // 3: replication. A `meta` store (this device's id, the clock, the account, per-project sync
  // settings); change-log entries become {seq, projectId, kind, id, rev, deleted}, findable by record;
  // every existing record gets a revision. Entries of the old shape are dropped: no project syncs
  // until switched on, which logs a fresh snapshot of it.
  (db, tx) => {
    const meta = db.createObjectStore('meta', { keyPath: 'key' });
    const device = crypto.randomUUID();
    meta.put({ key: 'device', value: device });
    const changes = tx.objectStore('changes');
    changes.clear();
    changes.createIndex('record', ['kind', 'id']);
    let clock = { ms: 0, counter: 0 };
    const stamp = () => formatRev((clock = nextClock(clock, Date.now())), device);
    const stampAll = (store, change) => {
      tx.objectStore(store).openCursor().onsuccess = (event) => {
        const cursor = event.target.result;
        if (!cursor) {
          meta.put({ key: 'clock', ...clock });
          return;
        }
        cursor.update(change(cursor.value));
        cursor.continue();
      };
    };
    stampAll('projects', (p) => ({ ...p, rev: stamp(), ...(p.modelId ? { headRev: stamp() } : {}) }));
    for (const store of ['classes', 'samples', 'models']) stampAll(store, (r) => ({ ...r, rev: stamp() }));
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
const pendingNotices = new WeakMap();

/** Tell other contexts (the sync worker) which projects' records changed, once `tx` commits. */
function noticeOnCommit(tx, projectId) {
  let projects = pendingNotices.get(tx);
  if (!projects) {
    pendingNotices.set(tx, (projects = new Set()));
    tx.addEventListener('complete', () => {
      const channel = new BroadcastChannel(CHANGES_CHANNEL);
      channel.postMessage({ projects: [...projects] });
      channel.close();
    });
  }
  projects.add(projectId);
}

/** The BroadcastChannel on which committed writes announce {projects: [id, ...]}. */
export const CHANGES_CHANNEL = 'tejas-changes';

const outdatedListeners = new Set();

/**
 * Call `listener()` when a newer version of the app opens the database in another tab: this page or
 * worker has closed its connection by then (so that upgrade goes on) and its reads and writes fail,
 * saying to reload.
 */
export function onDatabaseOutdated(listener) {
  outdatedListeners.add(listener);
}

/** The database, opened (and migrated) once per page or worker. */
export function openDatabase(name = DB_NAME) {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(name, MIGRATIONS.length);
    req.onupgradeneeded = (event) => {
      for (let v = event.oldVersion; v < MIGRATIONS.length; v++) MIGRATIONS[v](req.result, req.transaction);
    };
    req.onsuccess = () => {
      const db = req.result;
      // An upgrade waits until every connection to the old version closes: an old tab left open would
      // stall it (the new tab saw "blocked") until closed. Close ours at once instead.
      db.onversionchange = () => {
        db.close();
        opened = Promise.reject(new Error('Tejas was updated in another tab; reload this page to keep working.'));
        opened.catch(() => {});  // rejects each caller, not the page
        for (const listener of outdatedListeners) listener();
      };
      resolve(db);
    };
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
export const getAllKeys = (store, query) => request(store.getAllKeys(query));
export const getAllFromIndex = (store, index, query) => request(store.index(index).getAll(query));
export const put = (store, value) => request(store.put(value));
export const count = (store, query) => request(store.count(query));
export const countFromIndex = (store, index, query) => request(store.index(index).count(query));
export const getAllKeysFromIndex = (store, index, query) => request(store.index(index).getAllKeys(query));
export const remove = (store, key) => request(store.delete(key));

/** The store's record kinds (docs/sync.md) and the change-log record id of a stored value. */
export const KINDS = {
  project: { store: 'projects', id: (r) => r.id },
  class: { store: 'classes', id: (r) => r.id },
  sample: { store: 'samples', id: (r) => `${r.projectId}/${r.contentId}` },
  model: { store: 'models', id: (r) => r.id },
  head: { store: 'projects', id: (r) => r.id },
};

/**
 * The replicated writes of one transaction over `s` (which must hold 'changes' and 'meta'): each
 * `save`/`drop`/`setHead` stamps the record with the next clock revision and logs its new state.
 */
export async function changeWriter(s) {
  const [clock, device] = await Promise.all([get(s.meta, 'clock'), get(s.meta, 'device')]);
  let state = clock ?? { ms: 0, counter: 0 };
  const next = () => {
    state = nextClock(state, Date.now());
    s.meta.put({ key: 'clock', ms: state.ms, counter: state.counter });
    return formatRev(state, device.value);
  };
  const log = (projectId, kind, id, rev, deleted) => {
    noticeOnCommit(s.changes.transaction, projectId);
    return put(s.changes, { projectId, kind, id, rev, deleted });
  };
  return {
    /** Store `value` (a project, class, sample or model) with a new revision; resolves the stored value. */
    async save(kind, value) {
      const stored = { ...value, rev: next() };
      await put(s[KINDS[kind].store], stored);
      await log(kind === 'project' ? stored.id : stored.projectId, kind, KINDS[kind].id(stored), stored.rev, false);
      return stored;
    },
    /** Delete a record (by its store key) and log its tombstone. */
    async drop(kind, projectId, key) {
      await remove(s[KINDS[kind].store], key);
      const id = kind === 'sample' ? `${projectId}/${key[1]}` : key;
      await log(projectId, kind, id, next(), true);
    },
    /** Make `modelId` the project's current model (the `head` record); resolves the stored project. */
    async setHead(project, modelId, extra = {}) {
      const stored = { ...project, ...extra, modelId, headRev: next() };
      await put(s.projects, stored);
      await log(project.id, 'head', project.id, stored.headRev, false);
      return stored;
    },
    /** Log the tombstone of a project's head (the project is being deleted). */
    dropHead: (projectId) => log(projectId, 'head', projectId, next(), true),
  };
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
