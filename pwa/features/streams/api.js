// The server's prediction streams (docs/predictions.md, "Streams") as small functions, and a stream's
// events read with fetch (the Authorization header; a token never goes into a URL) through the one
// SSE parser the app has (features/jobs/api.js).
import { SyncError, call } from '../sync/api.js';
import { account, sseMessages } from '../jobs/api.js';

export { SyncError, account };

const streamPath = (name, rest = '') => `api/streams/${encodeURIComponent(name)}${rest}`;

/** A stream name the server accepts (its NAME pattern). */
export const STREAM_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$/;
export const STREAM_NAME_PATTERN = '[A-Za-z0-9_\\-][A-Za-z0-9_.\\-]{0,99}';

/** The model reference of a synced project's current model. */
export const projectModel = (projectId) => `project:${projectId}`;

/** [{name, model, top_k, created, appended, predicted, dead, pending}] of the signed-in user. */
export const listStreams = ({ server, token }) => call(server, 'api/streams', { token }).then((a) => a.streams);

/** Create (or change) a stream: resolves with its figures (GET /api/streams/{name}). */
export const putStream = ({ server, token }, name, { model, topK = 3 }) =>
  call(server, streamPath(name), { method: 'PUT', token, json: { model, top_k: topK } });

export const getStream = ({ server, token }, name) => call(server, streamPath(name), { token });
export const deleteStream = ({ server, token }, name) => call(server, streamPath(name), { method: 'DELETE', token });

/** Append one image (a Blob's raw bytes) under `key`: resolves {key, entry, duplicate}. */
export const appendImage = ({ server, token }, name, blob, key, { signal } = {}) =>
  call(server, streamPath(name, `/images?key=${encodeURIComponent(key)}`), { method: 'POST', token, body: blob, signal });

/**
 * A page of results, oldest first: {results, next, more} (pass `next` as `after` for the page that follows);
 * with `newest`, the `limit` newest results, newest first (`next`: the newest id, to follow events after).
 */
export const results = ({ server, token }, name, { after = 0, limit = 50, newest = false } = {}) =>
  call(server, streamPath(name, `/results?after=${after}&limit=${limit}${newest ? '&newest=true' : ''}`), { token });

/** Dead letters, oldest first: [{key, error, deliveries, at}]. */
export const deadLetters = ({ server, token }, name, { limit = 100 } = {}) =>
  call(server, streamPath(name, `/dead?limit=${limit}`), { token }).then((a) => a.entries);

/** Whether an error is the server saying it has no Redis (the stream routes' 503). */
export const noRedis = (error) => error?.status === 503;

/**
 * Read a stream's events once: `onEvent({id, event, data})` for each `prediction` and `stats` event.
 * Resumes after `lastEventId` (sent as Last-Event-ID), or replays after `after`; with neither, only
 * results written from now on. Resolves when the connection ends (the caller reconnects); rejects with a
 * SyncError when the server cannot be reached (status 0) or refuses (404: no such stream of yours).
 */
export async function readStreamEvents({ server, token }, name, { lastEventId = null, after = null, onEvent, onOpen, signal }) {
  const headers = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
  if (lastEventId !== null) headers['Last-Event-ID'] = String(lastEventId);
  const query = lastEventId === null && after !== null ? `?after=${after}` : '';
  let response;
  try {
    response = await fetch(new URL(streamPath(name, `/events${query}`), `${server.replace(/\/+$/, '')}/`), { headers, signal, cache: 'no-store' });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new SyncError(`Cannot reach the server at ${server} (offline, or the server is down).`);
  }
  if (!response.ok) {
    const detail = await response.json().then((a) => a.detail, () => null);
    throw new SyncError(typeof detail === 'string' ? detail : `HTTP ${response.status} for the stream's events`, response.status);
  }
  onOpen?.();
  try {
    for await (const message of sseMessages(response.body)) {
      onEvent({ id: message.id, event: message.event, data: message.data ? JSON.parse(message.data) : {} });
    }
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    // a cut connection: the caller reconnects after the last event it got
  }
}
