// The page's side of the workers: one Worker per workers/<name>.js (and instance), started on first use
// and kept for the page's life; the calls to the embed worker, counted by who made them (a test proves
// that Train after background embedding embeds nothing); and the session options background embedding
// borrows from the last foreground call. tejas.js, the API, calls workers only through here.
import { MESSAGE, callWorker } from '../protocol.js';

const workers = {};

/** The worker running workers/<name>.js; `instance` keeps several apart (e.g. one per training mode). */
export function worker(name, instance = '') {
  const key = `${name}:${instance}`;
  workers[key] ??= new Worker(new URL(`./${name}.js`, import.meta.url), { type: 'module' });
  return workers[key];
}

/** A request to the Python worker (the core in Pyodide). */
export const callPython = (type, payload, options) => callWorker(worker('python'), type, payload, options);

// Items sent to the embed worker, by whom. Read with embedCounts().
const embedTally = { foreground: { calls: 0, images: 0, texts: 0 }, background: { calls: 0, images: 0, texts: 0 } };

/**
 * A request to the embed worker on behalf of `by` ('foreground' | 'background'), counted: one call, and
 * the images (MESSAGE.EMBED) or texts (MESSAGE.EMBED_TEXT) in `payload`.
 */
export function callEmbed(by, type, payload, options) {
  embedTally[by].calls += 1;
  if (type === MESSAGE.EMBED) embedTally[by].images += payload.images.length;
  if (type === MESSAGE.EMBED_TEXT) embedTally[by].texts += payload.texts.length;
  return callWorker(worker('embed'), type, payload, options);
}

/**
 * {foreground: {calls, images, texts}, background: {calls, images, texts}}: embed-worker calls and the
 * images and texts they were given since the page loaded (foreground: embedImages/embedTexts callers,
 * training and predictions included; background: backgroundEmbedding's own calls).
 */
export function embedCounts() {
  return { foreground: { ...embedTally.foreground }, background: { ...embedTally.background } };
}

// The embed worker keeps one set of sessions per (artifacts, threads, provider): background calls use
// the options of the last foreground call, so the two never make the worker reload its models.
let sessionOptions = {};

/** Remember a foreground call's {threads, provider} for background calls. */
export function rememberSessionOptions({ threads, provider }) {
  sessionOptions = { threads, provider };
}

/** A background call's options: the last foreground call's session options, then its own. */
export const withSessionOptions = (options) => ({ ...sessionOptions, ...options });
