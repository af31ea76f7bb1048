// Service worker (foundation version): caches the app shell under a versioned name and serves it
// when the network is gone. The training-engine issue replaces the list with a generated precache
// of the vendored runtimes and default artifacts.
const VERSION = 'tejas-shell-v1';
const SHELL = ['./', 'index.html', 'styles.css', 'app.js', 'protocol.js', 'manifest.webmanifest', 'icons/icon.svg'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(VERSION).then((cache) => cache.addAll(SHELL)));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys().then((names) =>
    Promise.all(names.filter((name) => name.startsWith('tejas-shell-') && name !== VERSION).map((name) => caches.delete(name)))));
});

// Network first so a running server always wins; the cached copy (headers included, so COOP/COEP
// survive) when offline.
self.addEventListener('fetch', (event) => {
  if (event.request.method !== 'GET' || new URL(event.request.url).origin !== self.location.origin) return;
  event.respondWith(fetch(event.request).catch(async () => {
    const cached = await caches.match(event.request, { ignoreSearch: true });
    if (cached) return cached;
    throw new Error(`offline and not cached: ${event.request.url}`);
  }));
});
