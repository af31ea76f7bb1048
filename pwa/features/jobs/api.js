// The server's training-job API (docs/jobs.md) as small functions, and its event stream read with
// fetch: EventSource cannot send the Authorization header, and a token never goes into a URL.
import { SyncError, call } from '../sync/api.js';
import { readMeta } from '../sync/settings.js';

/** {server, token} of the signed-in account; rejects with what to do when signed out. */
export async function account() {
  const { account: a } = await readMeta('account');
  if (!a?.token) throw new SyncError('Sign in on the Sync screen first: server training uses your account.', 401);
  return { server: a.server, token: a.token };
}

const jobPath = (id, rest = '') => `api/jobs/${encodeURIComponent(id)}${rest}`;

export const capabilities = ({ server, token }) => call(server, 'api/jobs/capabilities', { token });
export const createJob = ({ server, token }, body) => call(server, 'api/jobs', { method: 'POST', token, json: body });
export const getJob = ({ server, token }, id) => call(server, jobPath(id), { token });
export const cancelJob = ({ server, token }, id) => call(server, jobPath(id), { method: 'DELETE', token });

/** A result file's bytes (`name` from Job.result.files, e.g. "model.onnx" or "artifacts/manifest.json"). */
export const jobFile = ({ server, token }, id, name, { signal } = {}) =>
  call(server, jobPath(id, `/files/${name.split('/').map(encodeURIComponent).join('/')}`), { token, bytes: true, signal });

/**
 * Read the job's event stream once: `onEvent({id, event, data})` for each event after `lastEventId`.
 * Resolves {terminal} when the stream ends (terminal: it ended with done/failed/cancelled; otherwise the
 * connection was cut and the caller reconnects); rejects with a SyncError when the server cannot be
 * reached or refuses (`status` 404: the job is gone).
 */
export async function readEvents({ server, token }, id, { lastEventId = null, onEvent, signal }) {
  const headers = { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' };
  if (lastEventId !== null) headers['Last-Event-ID'] = String(lastEventId);
  let response;
  try {
    response = await fetch(new URL(jobPath(id, '/events'), `${server}/`), { headers, signal, cache: 'no-store' });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new SyncError(`Cannot reach the server at ${server} (offline, or the server is down).`);
  }
  if (!response.ok) {
    const detail = await response.json().then((a) => a.detail, () => null);
    throw new SyncError(typeof detail === 'string' ? detail : `HTTP ${response.status} for the job's events`, response.status);
  }
  let terminal = false;
  try {
    for await (const message of sseMessages(response.body)) {
      const data = message.data ? JSON.parse(message.data) : {};
      onEvent({ id: message.id, event: message.event, data });
      if (TERMINAL.has(message.event)) terminal = true;
    }
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    // a cut connection: the caller reconnects after the last event it got
  }
  return { terminal };
}

export const TERMINAL = new Set(['done', 'failed', 'cancelled']);

/**
 * Server-sent events from a byte stream (the WHATWG event-stream format): yields {id, event, data} per
 * dispatched message; comment lines (": keep-alive") and messages without data are skipped.
 */
export async function* sseMessages(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let message = { id: null, event: 'message', data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // a trailing "\r" may be half of "\r\n": keep it, with the unfinished last line, for the next chunk
      const hold = buffer.endsWith('\r') ? '\r' : '';
      const lines = (hold ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
      buffer = lines.pop() + hold;
      for (const line of lines) {
        if (line === '') {
          if (message.data.length) yield { id: message.id, event: message.event, data: message.data.join('\n') };
          message = { id: message.id, event: 'message', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (name === 'data') message.data.push(value);
        else if (name === 'event') message.event = value;
        else if (name === 'id' && !value.includes('\0')) message.id = value;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
