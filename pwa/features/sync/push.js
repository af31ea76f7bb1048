// Push: the queue's records of synced projects go to the server — first the blobs they refer to that
// the server lacks (image bytes as stored, model parameters as float32 LE), then the records in
// batches, each idempotent by (device, mutation id). Entries leave the queue only after the server
// acknowledged them: a cut connection or a dead server loses nothing, the next run sends them again.
import { get, transaction } from '../../db.js';
import * as api from './api.js';
import { acknowledge, currentChanges, pendingRecords } from './queue.js';
import { parameterBytes } from './records.js';
import { projectKey, updateMeta } from './settings.js';

/** Records per push request (the server takes up to 1000) and a bound on its JSON (the server's is 8 MiB). */
export const PUSH_BATCH = 500;
const PUSH_BYTES = 4 * 1024 * 1024;
const MISSING_BATCH = 1000;
const UPLOADS_AT_ONCE = 4;

/** Push everything queued for the projects in `synced`; resolves with the number of changes sent. */
export async function pushAll({ server, token, device, synced, onProgress }) {
  let sent = 0;
  for (;;) {
    const groups = (await pendingRecords(synced)).slice(0, PUSH_BATCH);
    if (!groups.length) return sent;
    const changes = await currentChanges(groups);
    // a record whose blob the server refuses (bytes it will never take) is set aside, as a refused record is
    const refused = await uploadBlobs(server, token, changes, onProgress);
    const items = [];
    for (const item of changes) {
      const error = refused.get(blobOf(item.change));
      if (error) await setAside(item, error);
      else items.push(item);
    }
    // nothing to send for a record a pull deleted since: its entries just leave the queue
    const skipped = items.filter((i) => !i.change).flatMap((i) => i.group.seqs);
    if (skipped.length) await acknowledge(skipped);
    for (const chunk of chunks(items.filter((i) => i.change))) {
      try {
        await api.push(server, token, device, chunk.map((i) => i.change));
      } catch (error) {
        const at = api.refusedChange(error);
        if (at === null) throw error;
        // one record the server can never take must not hold up the others: it leaves the queue
        // (a later edit of it queues it again) and its project says why
        await setAside(chunk[at], error);
        break;
      }
      await acknowledge(chunk.flatMap((i) => i.group.seqs));
      sent += chunk.length;
      onProgress?.({ stage: 'push', sent });
    }
  }
}

async function setAside({ group, change }, error) {
  await acknowledge(group.seqs);
  const what = change.data?.name ? `${change.kind} "${change.data.name}"` : `${change.kind} ${change.id}`;
  await updateMeta(projectKey(group.projectId), (old) => ({
    ...old, error: `${what} was not synced: the server refused it (${error.message}). Change it to try again.`,
  }));
}

/** `items` cut where a request's JSON would pass PUSH_BYTES (mutation order kept). */
function chunks(items) {
  const out = [];
  let current = [];
  let bytes = 0;
  for (const item of items) {
    const size = JSON.stringify(item.change).length + 1;
    if (current.length && bytes + size > PUSH_BYTES) {
      out.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length) out.push(current);
  return out;
}

/** The sha256 of the blob a live change refers to (a sample's bytes, a model's parameters), or undefined. */
function blobOf(change) {
  if (!change || change.deleted) return undefined;
  if (change.kind === 'sample') return change.data.contentId;
  if (change.kind === 'model') return change.data.parameters.sha256;
  return undefined;
}

/** The server's answer to a blob that it will never take as it is (not a lost connection, sign-in, rate, or a
 * full storage quota: room made later lets the same bytes in, so that run fails and is retried). */
const refusedForGood = (error) => error.status >= 400 && error.status < 500
  && ![401, 403, 408, 429].includes(error.status) && !error.quota;

/**
 * Upload the blobs `items` refer to that the server lacks. Resolves with those it refused for good
 * (sha256 → error), so that their records are set aside rather than holding up every later run.
 */
async function uploadBlobs(server, token, items, onProgress) {
  const wanted = new Map();
  for (const { change, record } of items) {
    const sha = blobOf(change);
    if (!sha) continue;
    if (change.kind === 'sample') {
      // a text sample's blob is its UTF-8 text; the server checks each kind by content
      const kind = record.format === 'text' ? 'text' : 'image';
      wanted.set(sha, { kind, name: record.name, contentId: record.contentId });
    } else {
      wanted.set(sha, { kind: 'model', name: `model ${record.id}`, record });
    }
  }
  const refused = new Map();
  const hashes = [...wanted.keys()];
  const missing = [];
  for (let i = 0; i < hashes.length; i += MISSING_BATCH) {
    missing.push(...await api.missingBlobs(server, token, hashes.slice(i, i + MISSING_BATCH)));
  }
  let done = 0;
  const queue = [...missing];
  const worker = async () => {
    for (let sha = queue.shift(); sha; sha = queue.shift()) {
      const blob = wanted.get(sha);
      const body = blob.kind === 'model' ? parameterBytes(blob.record.parameters) : await imageBytes(blob.contentId);
      try {
        await api.putBlob(server, token, sha, blob.kind, body);
      } catch (error) {
        if (!refusedForGood(error)) throw error;
        refused.set(sha, error);
      }
      onProgress?.({ stage: 'upload', done: ++done, total: missing.length });
    }
  };
  await Promise.all(Array.from({ length: Math.min(UPLOADS_AT_ONCE, queue.length) }, worker));
  return refused;
}

async function imageBytes(contentId) {
  const record = await transaction(['blobs'], 'readonly', ({ blobs }) => get(blobs, contentId));
  if (!record) throw new Error(`image ${contentId} is missing from this device's storage`);
  return record.image;
}
