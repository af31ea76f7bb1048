// The one message protocol between the page and its workers (see workers/*.js).
// Request: {id, type, payload}. Reply: {id, ok: true, value} | {id, ok: false, error: {name, message}}.
// Progress while working: {id, progress: {...}}.

export const MESSAGE = Object.freeze({
  SELFCHECK: 'selfcheck',
  EMBED: 'embed',
  EMBED_TEXT: 'embed-text', // {artifacts, texts: string[], batchSize?, threads?} → {featureSize, features, ...} (text projects)
  RUN_BLOCK: 'run-block',
  TRAIN_HEAD: 'train-head',
  EXPORT_ONNX: 'export-onnx',
  EXPORT_PT: 'export-pt',
  EXPORT_DATASET: 'export-dataset',
  READ_TEXT_CSV: 'read-text-csv', // {bytes, name} → {rows: [{text, label, row}], skipped: [{row, reason}], notes: string[], ...}
  WRITE_TEXT_CSV: 'write-text-csv', // {rows: [{text, label}]} → Uint8Array: the dataset as CSV, formula cells neutralised
  WRITE_ZIP: 'write-zip',
  READ_ZIP: 'read-zip',
  IMAGE_ZIP_OPEN: 'image-zip-open', // {file} → {handle, name, paths}; rejects with the core's reason for a refused zip
  IMAGE_ZIP_READ: 'image-zip-read', // {handle, indices} → [{blob} | {error}] in the order asked
  IMAGE_ZIP_CLOSE: 'image-zip-close', // {handle} → null
  DATASET_ZIP_OPEN: 'dataset-zip-open', // {file} → {handle, classes, warnings, skipped: [{path, reason}], count}; rejects for a refused zip
  DATASET_ZIP_READ: 'dataset-zip-read', // {handle, count, maxBytes?} → [{label, name, metadata, bytes}] (the next ones; [] when done)
  DATASET_ZIP_CLOSE: 'dataset-zip-close', // {handle} → null
  SYNC_NOW: 'sync-now',
  SYNC_STATUS: 'sync-status',
  SIGN_IN: 'sign-in',
  SIGN_OUT: 'sign-out',
  DELETE_ACCOUNT: 'delete-account',
  SET_PROJECT_SYNC: 'set-project-sync',
  SET_ONLINE: 'set-online',
});

/** The BroadcastChannel on which the sync worker announces its status (every tab's Sync screen listens). */
export const SYNC_STATUS_CHANNEL = 'tejas-sync-status';

/** The BroadcastChannel on which a pull announces {projects: [id, ...]} that other devices' changes touched. */
export const REMOTE_CHANGES_CHANNEL = 'tejas-remote-changes';

/** Call `type` on `worker`; resolves with the value, rejects with the worker's error rethrown here. */
export function callWorker(worker, type, payload, { onProgress, signal } = {}) {
  const id = crypto.randomUUID();
  return new Promise((resolve, reject) => {
    const onMessage = ({ data }) => {
      if (data.id !== id) return;
      if (data.progress) { onProgress?.(data.progress); return; }
      worker.removeEventListener('message', onMessage);
      if (data.ok) resolve(data.value);
      else reject(Object.assign(new Error(data.error.message), { name: data.error.name }));
    };
    worker.addEventListener('message', onMessage);
    signal?.addEventListener('abort', () => {
      worker.removeEventListener('message', onMessage);
      worker.postMessage({ id, type: 'cancel' });
      reject(new DOMException('Cancelled', 'AbortError'));
    }, { once: true });
    worker.postMessage({ id, type, payload });
  });
}

/** Worker side: answer requests with `handlers[type](payload, progress, id)`; a `cancel` request
 * carries the id of the call to stop, which the handler checks between steps. */
export function serveRequests(scope, handlers) {
  scope.addEventListener('message', async ({ data }) => {
    if (data.type === 'cancel') {
      handlers.cancel?.(data.payload, null, data.id);
      return;
    }
    const handler = handlers[data.type];
    if (!handler) return;
    const progress = (value) => scope.postMessage({ id: data.id, progress: value });
    try {
      scope.postMessage({ id: data.id, ok: true, value: await handler(data.payload, progress, data.id) });
    } catch (error) {
      scope.postMessage({ id: data.id, ok: false, error: { name: error.name ?? 'Error', message: String(error.message ?? error) } });
    }
  });
}
