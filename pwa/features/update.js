// The service worker's life cycle as the app sees it: register, learn that a new version has
// installed beside the running one, and switch to it (the new worker activates, the page reloads).

/**
 * Register sw.js. `onUpdateReady(worker)` is called when a new version has installed and waits for
 * the page to switch (never on the first install, when there is nothing to switch from);
 * `onInstallFailed(message)` when a version could not store its files (network, disk quota, a file
 * that changed on the server).
 * @returns {Promise<ServiceWorkerRegistration|null>} null where the browser has no service workers
 */
export async function registerServiceWorker({ onUpdateReady, onInstallFailed } = {}) {
  if (!('serviceWorker' in navigator)) return null;
  navigator.serviceWorker.addEventListener('message', (event) => {
    if (event.data?.type === 'install-failed') onInstallFailed?.(event.data.message);
  });
  navigator.serviceWorker.startMessages();
  const registration = await navigator.serviceWorker.register(new URL('../sw.js', import.meta.url), { type: 'module' });
  const ready = (worker) => navigator.serviceWorker.controller && onUpdateReady?.(worker);
  if (registration.waiting) ready(registration.waiting);
  registration.addEventListener('updatefound', () => {
    const worker = registration.installing;
    worker?.addEventListener('statechange', () => {
      if (worker.state === 'installed') ready(worker);
    });
  });
  return registration;
}

/** Switch to the waiting version: it takes over and the page reloads under it. False if none waits. */
export function applyUpdate(registration) {
  const waiting = registration?.waiting;
  if (!waiting) return false;
  navigator.serviceWorker.addEventListener('controllerchange', () => location.reload(), { once: true });
  waiting.postMessage('skip-waiting');
  return true;
}
