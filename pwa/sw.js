// Service worker: precaches everything the app needs offline under a versioned cache name, serves it
// cache-first with the headers it was stored with (COOP/COEP survive, so WASM threads work offline),
// and leaves older versions alone until the new one takes over on reload.
import { FILES, VERSION } from './precache.js';

const CACHE = `tejas-${VERSION}`;
const scope = new URL(self.registration.scope);
const PRECACHED = new Set(FILES.map((file) => new URL(file, scope).href));

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    // 'reload' skips the HTTP cache, so a new version never stores an old file.
    await cache.addAll(FILES.map((file) => new Request(new URL(file, scope), { cache: 'reload' })));
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('tejas-') && name !== CACHE) await caches.delete(name);
    }
  })());
});

self.addEventListener('message', (event) => {
  if (event.data === 'skip-waiting') self.skipWaiting();  // the page's "new version — reload" button
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== scope.origin) return;
  const key = url.pathname === scope.pathname ? scope.href : url.origin + url.pathname;
  if (!PRECACHED.has(key)) return;  // not ours: the network as usual
  event.respondWith((async () => {
    const cache = await caches.open(CACHE);
    return (await cache.match(key)) ?? fetch(event.request);
  })());
});
