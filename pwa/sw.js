// Service worker: precaches everything the app needs offline under a versioned cache name, serves it
// cache-first with the headers it was stored with (COOP/COEP survive, so WASM threads work offline),
// and installs a new version beside the old one, which keeps serving until the new one takes over on
// reload. Files whose content did not change are copied from the old cache instead of downloaded
// again; every downloaded file is checked against its sha256, so a version never mixes in a file of
// another version. The text model (ON_DEMAND) joins the same cache the first time the app fetches it.
import { FILES, ON_DEMAND, VERSION } from './precache.js';

const CACHE = `tejas-${VERSION}`;
// Artifact sets a server job made (features/jobs/artifacts.js stores them): not versioned with the app,
// so no activate ever deletes them; served from there under artifacts/server/.
const SERVER_ARTIFACTS_CACHE = 'server-artifacts';
const scope = new URL(self.registration.scope);
const urlOf = (file) => new URL(file, scope).href;
const PRECACHED = new Set(Object.keys(FILES).map(urlOf));
const ON_DEMAND_FILE = new Map(Object.keys(ON_DEMAND).map((file) => [urlOf(file), file]));
// Every file of this version by name, with its sha256: the precached ones and those kept on first use.
const ALL_FILES = { ...FILES, ...ON_DEMAND };
// Each cache records the hashes of what it holds, so the next version knows what it can reuse.
const INDEX = urlOf('__tejas_precache__.json');

// Like features/dataset/images.js's sha256Hex, kept here so the worker imports nothing but its list:
// every module a service worker imports is fetched and compared on each update check.
async function sha256Hex(buffer) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', buffer));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** {file: Response} of files an older tejas cache holds with the same content. */
async function reusable() {
  const found = new Map();
  for (const name of await caches.keys()) {
    if (!name.startsWith('tejas-') || name === CACHE) continue;
    const old = await caches.open(name);
    const index = await old.match(INDEX);
    if (!index) continue;
    const hashes = await index.json();
    for (const [file, hash] of Object.entries(ALL_FILES)) {
      if (found.has(file) || hashes[file] !== hash) continue;
      const response = await old.match(urlOf(file));
      if (response) found.set(file, response);
    }
  }
  return found;
}

async function download(file) {
  // 'reload' skips the HTTP cache, so a new version never stores an old file.
  const response = await fetch(new Request(urlOf(file), { cache: 'reload' }));
  if (!response.ok) throw new Error(`${file}: HTTP ${response.status}`);
  const body = await response.arrayBuffer();
  const hash = await sha256Hex(body);
  if (hash !== ALL_FILES[file]) throw new Error(`${file}: content changed since this version was built (sha256 ${hash.slice(0, 12)}…)`);
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    try {
      const old = await reusable();
      await Promise.all(Object.keys(FILES).map(async (file) => {
        await cache.put(urlOf(file), old.get(file) ?? await download(file));
      }));
      // text model files an older version kept come along; the others wait for their first use
      await Promise.all(Object.keys(ON_DEMAND).filter((file) => old.has(file)).map((file) => cache.put(urlOf(file), old.get(file))));
      // Written last: a cache without its index is never taken for a complete one.
      await cache.put(INDEX, new Response(JSON.stringify(ALL_FILES), { headers: { 'Content-Type': 'application/json' } }));
    } catch (error) {
      await caches.delete(CACHE);  // a failed install leaves nothing behind; the running version carries on
      // say why to the open pages (a first install that fails also removes the registration)
      for (const client of await self.clients.matchAll({ type: 'window', includeUncontrolled: true })) {
        client.postMessage({ type: 'install-failed', message: String(error?.message ?? error) });
      }
      throw error;
    }
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    let first = true;
    for (const name of await caches.keys()) {
      if (name.startsWith('tejas-') && name !== CACHE) {
        first = false;
        await caches.delete(name);
      }
    }
    // On the first install nothing older runs, so taking the open page now mixes no versions, and its
    // workers can load artifact sets from the cache (server-trained models) without a reload.
    if (first) await self.clients.claim();
  })());
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') self.skipWaiting();  // the page's "new version — reload" button
  if (event.data === 'version') event.source?.postMessage({ version: VERSION });
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== scope.origin) return;
  const key = url.pathname === scope.pathname ? scope.href : url.origin + url.pathname;
  if (url.pathname.startsWith(`${scope.pathname}artifacts/server/`)) {
    event.respondWith((async () => {
      const cache = await caches.open(SERVER_ARTIFACTS_CACHE);
      return (await cache.match(key)) ?? new Response(`${url.pathname} is not on this device`, { status: 404 });
    })());
    return;
  }
  if (ON_DEMAND_FILE.has(key)) {
    event.respondWith(keptOnFirstUse(key));
    return;
  }
  if (!PRECACHED.has(key)) return;  // not ours: the network as usual
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    return (await cache.match(key)) ?? fetch(event.request);
  })());
});

const downloading = new Map();
/** An ON_DEMAND file from the cache, or downloaded (once, however many ask), checked and kept there. */
async function keptOnFirstUse(key) {
  const cache = await caches.open(CACHE);
  const hit = await cache.match(key);
  if (hit) return hit;
  if (!downloading.has(key)) {
    downloading.set(key, (async () => {
      const response = await download(ON_DEMAND_FILE.get(key));
      await cache.put(key, response.clone());
      return response;
    })().finally(() => downloading.delete(key)));
  }
  try {
    return (await downloading.get(key)).clone();
  } catch (error) {
    // offline before the first use, or the server has another version's file: say which and why
    return new Response(`${ON_DEMAND_FILE.get(key)} is not on this device yet and cannot be downloaded now: ${error.message}`,
      { status: 503, headers: { 'Content-Type': 'text/plain' } });
  }
}
