// A server job's artifact set (a `full` fine-tune makes a new backbone) kept offline in Cache Storage
// under same-origin URLs <app>/artifacts/server/<jobId>/<file>, which sw.js serves: the workers load
// them like the default set. The cache's name does not start with "tejas-": a new app version deletes
// those caches, and a model's files must outlive app versions.
import { account, jobFile } from './api.js';
import { sha256Hex } from '../dataset/images.js';
import { getAll, transaction } from '../../db.js';

export const SERVER_ARTIFACTS_CACHE = 'server-artifacts';

/** The path (relative to the app) a model records for its job's artifact set. */
export const jobArtifactsPath = (jobId) => `artifacts/server/${encodeURIComponent(jobId)}/`;

/** A model's recorded artifacts path as an absolute URL of this app. */
export const appUrl = (path) => new URL(`../../${path}`, import.meta.url).href;

const TYPES = { json: 'application/json', onnx: 'application/octet-stream' };
const responseOf = (bytes, file) => new Response(bytes, {
  headers: { 'Content-Type': TYPES[file.split('.').pop()] ?? 'application/octet-stream', 'Content-Length': String(bytes.byteLength),
    'Cross-Origin-Resource-Policy': 'same-origin' },
});

/** Whether every file of the set is in the cache. */
async function cached(base, files) {
  if (typeof caches === 'undefined') return false;
  const cache = await caches.open(SERVER_ARTIFACTS_CACHE);
  const found = await Promise.all(files.map((file) => cache.match(new URL(file, base).href)));
  return found.every(Boolean);
}

/**
 * Download a job's artifact files (`files`: names under the job's artifacts/, manifest.json among them)
 * into the cache, each checked against the manifest's sha256; the manifest is stored last, so a set
 * without it is never taken for complete. Resolves the set's absolute URL.
 */
export async function storeJobArtifacts(connection, jobId, files, { signal } = {}) {
  const base = appUrl(jobArtifactsPath(jobId));
  if (await cached(base, files)) return base;
  const manifestBytes = await jobFile(connection, jobId, 'artifacts/manifest.json', { signal });
  const manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
  const cache = await caches.open(SERVER_ARTIFACTS_CACHE);
  for (const file of files.filter((f) => f !== 'manifest.json')) {
    const bytes = await jobFile(connection, jobId, `artifacts/${file}`, { signal });
    const expected = manifest.files?.[file]?.sha256;
    if (expected && (await sha256Hex(bytes)) !== expected) {
      throw new Error(`The server's artifacts/${file} of job ${jobId} is damaged (its sha256 differs from the manifest's); try again.`);
    }
    await cache.put(new URL(file, base).href, responseOf(bytes, file));
  }
  await cache.put(new URL('manifest.json', base).href, responseOf(manifestBytes, 'manifest.json'));
  return base;
}

/**
 * The absolute artifacts URL a model needs: the app's default set, or its server job's set, downloaded
 * from the job's files (same account) when this device does not have it yet (a model synced from
 * another device). Rejects with what to do when that is impossible (offline, signed out, job gone).
 */
export async function modelArtifacts(model, defaultArtifacts) {
  if (!model?.artifactsUrl) return defaultArtifacts;
  const base = appUrl(model.artifactsUrl);
  const files = model.artifactFiles ?? ['manifest.json'];
  if (await cached(base, files)) return base;
  const what = 'This model was trained on the server and needs its fine-tuned model files, which are not on this device yet';
  if (!navigator.onLine) throw new Error(`${what}; they cannot be downloaded while offline. Go online (signed in) and try again.`);
  const jobId = model.server?.job;
  let connection;
  try {
    connection = await account();
  } catch {
    throw new Error(`${what}. Sign in on the Sync screen with the account that trained it, and they download once.`);
  }
  try {
    return await storeJobArtifacts(connection, jobId, files);
  } catch (error) {
    if (error.status === 404) throw new Error(`${what}, and the server no longer has them (the job was deleted or expired). Train again.`);
    throw new Error(`${what}; downloading them failed: ${error.message}`);
  }
}

/**
 * Delete cached artifact sets no model on this device uses any more (their models were pruned or
 * deleted); a model synced here later downloads its set again on first use.
 */
export async function pruneJobArtifacts() {
  if (typeof caches === 'undefined') return;
  const models = await transaction(['models'], 'readonly', ({ models: store }) => getAll(store));
  const used = new Set(models.filter((m) => m.artifactsUrl).map((m) => appUrl(m.artifactsUrl)));
  const cache = await caches.open(SERVER_ARTIFACTS_CACHE);
  const prefix = appUrl('artifacts/server/');
  for (const request of await cache.keys()) {
    const base = request.url.slice(0, request.url.indexOf('/', prefix.length) + 1);
    if (request.url.startsWith(prefix) && !used.has(base)) await cache.delete(request);
  }
}
