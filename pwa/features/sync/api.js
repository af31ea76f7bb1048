// The sync server's HTTP API (docs/sync.md) as small functions. Failures reject with a SyncError whose
// message a person can act on; `status` is the HTTP status (0: the server could not be reached).

export class SyncError extends Error {
  constructor(message, status = 0, detail = null, quota = null) {
    super(message);
    this.name = 'SyncError';
    this.status = status;
    this.detail = detail;  // the server's answer's `detail` as sent (a validation error's list)
    this.quota = quota;  // the server's X-Tejas-Quota: which quota is full ("storage"), or null
  }
}

/** `fetch` of `path` on `server`, JSON in and out; rejects with a SyncError. */
export async function call(server, path, { token, method = 'GET', json, body, headers = {}, signal, bytes = false } = {}) {
  const url = new URL(path, `${server.replace(/\/+$/, '')}/`).href;
  const init = { method, signal, headers: { ...headers } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/octet-stream';
    init.body = body;
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new SyncError(`Cannot reach the sync server at ${server} (offline, or the server is down). `
      + 'Nothing is lost: changes wait here and are sent when it answers.');
  }
  if (!response.ok) {
    let detail = '';
    let answer = null;
    try {
      answer = (await response.json()).detail ?? null;
      detail = typeof answer === 'string' ? answer : validationText(answer);
    } catch { /* not JSON */ }
    if (response.status === 404 && !detail) detail = `${server} has no sync service (HTTP 404 for ${path}); check the address`;
    const retry = response.headers.get('Retry-After');
    const when = retry && !/try again/i.test(detail) ? ` (try again in ${retry} s)` : '';  // once is enough
    throw new SyncError(`${detail || `HTTP ${response.status}`}${when}`, response.status, answer,
      response.headers.get('X-Tejas-Quota'));
  }
  if (bytes) return new Uint8Array(await response.arrayBuffer());
  return response.status === 204 ? null : response.json();
}

/** FastAPI's list of validation errors as one sentence. */
function validationText(detail) {
  if (!Array.isArray(detail)) return detail ? JSON.stringify(detail) : '';
  return detail.map((d) => `${(d.loc ?? []).join('.')}: ${d.msg}`).join('; ');
}

/** The index of the push change a validation error (422) is about, or null. */
export function refusedChange(error) {
  if (error?.status !== 422 || !Array.isArray(error.detail)) return null;
  for (const { loc = [] } of error.detail) {
    const at = loc.indexOf('changes');
    if (at >= 0 && Number.isInteger(loc[at + 1])) return loc[at + 1];
  }
  return null;
}

/** Create an account, then sign in with it. The server answers a taken email exactly like a new one (202,
 * no token: it does not tell strangers which emails have accounts), so a taken email with another
 * password shows only at the sign-in, and gets a sentence that says what to do. */
export async function signUp(server, email, password) {
  await call(server, 'api/auth/signup', { method: 'POST', json: { email, password } });
  try {
    return await signIn(server, email, password);
  } catch (error) {
    if (error.status !== 401) throw error;
    throw new SyncError(`${email} cannot sign in with this password: if it already has an account, `
      + 'sign in with that account\'s password.', 401, error.detail);
  }
}
export const signIn = (server, email, password) => call(server, 'api/auth/signin', { method: 'POST', json: { email, password } });
export const signOut = (server, token) => call(server, 'api/auth/signout', { method: 'POST', token });
export const me = (server, token) => call(server, 'api/me', { token });
export const deleteAccount = (server, token) => call(server, 'api/me', { method: 'DELETE', token });

/** The sha256s of `hashes` the server lacks for this user. */
export const missingBlobs = (server, token, hashes) =>
  call(server, 'api/blobs/missing', { method: 'POST', token, json: { sha256: hashes } }).then((a) => a.missing);

export const putBlob = (server, token, sha256, kind, body) =>
  call(server, `api/blobs/${sha256}?kind=${kind}`, { method: 'PUT', token, body });

export const getBlob = (server, token, sha256) => call(server, `api/blobs/${sha256}`, { token, bytes: true });

export const push = (server, token, device, changes) =>
  call(server, 'api/sync/push', { method: 'POST', token, json: { device, changes } });

export const pull = (server, token, since, limit) =>
  call(server, `api/sync/pull?since=${encodeURIComponent(since)}&limit=${limit}`, { token });
