// Pull: pages of records changed on the server after this device's cursor (the server's; never one
// made from a clock). The blobs a page refers to that this device lacks are downloaded first (images
// get their thumbnail made as addSamples makes it), then the page (or, when its new blobs are large,
// each part of it) is applied in one transaction with the new cursor: a record is put or deleted when the server's revision is at least the local one,
// and nothing is logged (these are not this device's changes). Projects new to this device start
// syncing; projects the server purged stop, with a notice.
import { get, getAllFromIndex, getAllKeysFromIndex, put, remove, transaction } from '../../db.js';
import { dropIfUnused } from '../dataset/projects.js';
import { readImage, sha256Hex } from '../dataset/images.js';
import { REMOTE_CHANGES_CHANNEL } from '../../protocol.js';
import * as api from './api.js';
import { maxRev, observeClock } from '../../clock.js';
import { blobOf, parametersFrom, sampleKey } from './records.js';
import { getMeta, projectKey, projectSettings, putMeta, readMeta } from './settings.js';

/** Records per pull page, and the most bytes of new blobs held in memory before a part of it is applied. */
export const PULL_LIMIT = 200;
const PART_BYTES = 32 * 1024 * 1024;
const STORES = ['projects', 'classes', 'samples', 'blobs', 'embeddings', 'models', 'changes', 'meta'];

/** Pull until the server has nothing newer; resolves with the number of changes applied. */
export async function pullAll({ server, token, userId, onProgress }) {
  let applied = 0;
  for (;;) {
    const { cursor } = await readMeta('cursor');
    const since = cursor?.userId === userId ? cursor.value : '0';
    const page = await api.pull(server, token, since, PULL_LIMIT);
    const parts = partsOf(page.changes);
    for (const [i, changes] of parts.entries()) {
      const blobs = await downloadBlobs(server, token, changes, onProgress);
      // a part's cursor is the server's version of its last change: pulls are in version order
      const partCursor = i === parts.length - 1 ? page.cursor : String(changes.at(-1).version);
      const changed = await applyPage({ ...page, changes, cursor: partCursor }, blobs, userId);
      applied += changed.size;
      if (changed.size) announce(changed);
    }
    onProgress?.({ stage: 'pull', applied });
    if (!page.more || String(page.cursor) === String(since)) return applied;
  }
}

/** A page's changes cut where the blobs they bring would pass PART_BYTES (a page of large photos). */
function partsOf(changes) {
  const parts = [[]];
  let bytes = 0;
  for (const change of changes) {
    const size = change.deleted ? 0
      : change.kind === 'sample' ? change.data?.size ?? 0
        : change.kind === 'model' ? (change.data?.parameters?.length ?? 0) * 4 : 0;
    if (parts.at(-1).length && bytes + size > PART_BYTES) {
      parts.push([]);
      bytes = 0;
    }
    parts.at(-1).push(change);
    bytes += size;
  }
  return parts;
}

/** {sha256: {image, thumbnail} | Float32Array} of the blobs `changes` refer to that this device lacks. */
async function downloadBlobs(server, token, changes, onProgress) {
  const wanted = await transaction(['blobs', 'models'], 'readonly', async ({ blobs, models }) => {
    const out = new Map();
    for (const change of changes) {
      const sha = blobOf(change);
      if (!sha || out.has(sha)) continue;
      if (change.kind === 'sample' && !(await get(blobs, sha))) out.set(sha, change);
      if (change.kind === 'model' && (await get(models, change.id))?.rev !== change.rev) out.set(sha, change);
    }
    return out;
  });
  const got = new Map();
  let done = 0;
  for (const [sha, change] of wanted) {
    const bytes = await api.getBlob(server, token, sha);
    if ((await sha256Hex(bytes)) !== sha) throw new Error(`the server sent other bytes than ${change.kind} ${change.id} refers to; try again`);
    if (change.kind === 'sample' && change.data?.format === 'text') {
      // a text sample: its blob is the text's UTF-8 bytes (the server checked them), stored as texts.js does
      got.set(sha, { contentId: sha, image: new Blob([bytes], { type: 'text/plain;charset=utf-8' }), thumbnail: null });
    } else if (change.kind === 'sample') {
      const image = await readImage(new Blob([bytes]), { sizeRule: false });  // the other device kept it
      got.set(sha, { contentId: sha, image: image.image, thumbnail: image.thumbnail });
    } else {
      got.set(sha, parametersFrom(bytes));
    }
    onProgress?.({ stage: 'download', done: ++done, total: wanted.size });
  }
  return got;
}

/** Tell every tab which projects changes from other devices touched (they offer to show them). */
function announce(changed) {
  const channel = new BroadcastChannel(REMOTE_CHANGES_CHANNEL);
  channel.postMessage({ projects: [...new Set(changed.values())] });
  channel.close();
}

/** Apply one pull page (see the module comment); resolves with the applied changes (id → project id). */
function applyPage(page, blobs, userId) {
  return transaction(STORES, 'readwrite', async (s) => {
    const settings = await projectSettings(s.meta);
    let clock = (await getMeta(s.meta, 'clock')) ?? { ms: 0, counter: 0 };
    const localOnly = new Map();
    const applied = new Map();
    for (const change of page.changes) {
      clock = observeClock(clock, change.rev);
      const projectId = change.project;
      if (!localOnly.has(projectId)) localOnly.set(projectId, await isLocalOnly(s, settings[projectId], projectId));
      if (localOnly.get(projectId)) continue;
      if (await applyChange(s, change, blobs, settings)) applied.set(`${change.kind}:${change.id}`, projectId);
    }
    await putMeta(s.meta, 'clock', { ms: clock.ms, counter: clock.counter });
    await putMeta(s.meta, 'cursor', { userId, value: String(page.cursor) });
    await putMeta(s.meta, 'retention', { projects: page.projects ?? {} });
    for (const [projectId, date] of Object.entries(page.purged ?? {})) {
      const setting = settings[projectId];
      if (!setting?.on || (setting.enabledAt && new Date(setting.enabledAt) >= new Date(date))) continue;
      await putMeta(s.meta, projectKey(projectId), {
        ...setting, on: false,
        notice: `The server deleted its copy on ${String(date).slice(0, 10)} (unchanged for longer than it keeps projects); `
          + 'it is still on this device. Switch sync on to upload it again.',
      });
    }
    return applied;
  }, 'the synced changes');
}

/**
 * Whether a project's remote changes stay off this device: its sync was switched off here, or it is
 * a project of this device (record or logged changes) that never synced.
 */
async function isLocalOnly(s, setting, projectId) {
  if (setting) return !setting.on;
  if (await get(s.projects, projectId)) return true;
  return (await getAllKeysFromIndex(s.changes, 'project', projectId)).length > 0;
}

/** The latest revision this device holds for a record: the stored one or that of an unsent write. */
async function localRev(s, kind, id, storedRev) {
  const entries = await getAllFromIndex(s.changes, 'record', [kind, id]);
  return entries.reduce((rev, e) => maxRev(rev, e.rev), storedRev ?? null);
}

/** Unsent writes the server's newer state replaces leave the queue. */
async function dropSuperseded(s, kind, id, rev) {
  for (const entry of await getAllFromIndex(s.changes, 'record', [kind, id])) {
    if (entry.rev <= rev) await remove(s.changes, entry.seq);
  }
}

async function applyChange(s, change, blobs, settings) {
  const { kind, id, rev, deleted, data } = change;
  const key = kind === 'sample' ? sampleKey(change) : kind === 'head' ? change.project : id;
  const store = { project: 'projects', class: 'classes', sample: 'samples', model: 'models', head: 'projects' }[kind];
  if (!store) return false;  // a kind of a newer version of the app
  const local = await get(s[store], key);
  const pendingHead = kind === 'head' ? await getMeta(s.meta, `head:${id}`) : null;
  const stored = kind === 'head' ? maxRev(local?.headRev, pendingHead?.rev) : local?.rev;
  const mine = await localRev(s, kind, id, stored);
  if (mine && rev < mine) return false;
  if (kind === 'model' && local && local.rev === rev) return false;  // the same model: nothing to download or write
  await APPLY[kind](s, { ...change, key, local, data, deleted }, blobs, settings);
  await dropSuperseded(s, kind, id, rev);
  return true;
}

const APPLY = {
  async project(s, { key, local, data, deleted, rev }, _blobs, settings) {
    if (deleted) {
      await deleteProjectHere(s, key);
      return;
    }
    const kind = data.kind === 'text' ? { kind: 'text' } : {};  // a project's kind never changes
    const project = local ? { ...local, name: data.name, created: data.created, rev }
      : { id: key, name: data.name, created: data.created, ...kind, updated: new Date().toISOString(), rev };
    const head = await getMeta(s.meta, `head:${key}`);
    if (head && !(project.headRev >= head.rev)) Object.assign(project, { modelId: head.modelId, headRev: head.rev });
    if (head) await remove(s.meta, `head:${key}`);
    await put(s.projects, project);
    if (!settings[key]) {
      // a project that arrived from the server syncs from now on
      settings[key] = { on: true, enabledAt: new Date().toISOString() };
      await putMeta(s.meta, projectKey(key), settings[key]);
    }
  },
  async class(s, { key, project, local, data, deleted, rev }) {
    if (!deleted) {
      await put(s.classes, { ...local, id: key, projectId: project, name: data.name, order: data.order, created: data.created, rev });
      return;
    }
    const into = data?.mergedInto;
    for (const sample of await getAllFromIndex(s.samples, 'class', [project, key])) {
      if (into) await put(s.samples, { ...sample, classId: into });  // merged: the server moved them too
      else {
        await remove(s.samples, [project, sample.contentId]);
        await dropIfUnused(s, sample.contentId);
      }
    }
    await remove(s.classes, key);
  },
  async sample(s, { key, project, data, deleted, rev }, blobs) {
    if (deleted) {
      await remove(s.samples, key);
      await dropIfUnused(s, key[1]);
      return;
    }
    if (!(await get(s.blobs, data.contentId))) {
      const blob = blobs.get(data.contentId);
      if (!blob) throw new Error(`image ${data.contentId} of ${data.name} was not downloaded; sync again`);
      await put(s.blobs, blob);
    }
    await put(s.samples, { ...data, projectId: project, contentId: key[1], rev });
  },
  async model(s, { key, project, data, deleted, rev }, blobs) {
    if (deleted) {
      await remove(s.models, key);
      return;
    }
    const parameters = blobs.get(data.parameters.sha256);
    if (!parameters || parameters.length !== data.parameters.length) throw new Error(`model ${key}: parameters missing; sync again`);
    await put(s.models, { ...data, id: key, projectId: project, parameters, rev });
  },
  async head(s, { key, local, data, deleted, rev }) {
    const modelId = deleted ? null : data?.modelId ?? null;
    if (local) await put(s.projects, { ...local, modelId, headRev: rev });
    else if (!deleted) await putMeta(s.meta, `head:${key}`, { modelId, rev });  // its project arrives later
  },
};

/** A project the server deleted: gone from this device with everything in it (not logged). */
async function deleteProjectHere(s, projectId) {
  for (const sample of await getAllFromIndex(s.samples, 'project', projectId)) {
    await remove(s.samples, [projectId, sample.contentId]);
    await dropIfUnused(s, sample.contentId);
  }
  for (const c of await getAllKeysFromIndex(s.classes, 'project', projectId)) await remove(s.classes, c);
  for (const m of await getAllKeysFromIndex(s.models, 'project', projectId)) await remove(s.models, m);
  for (const seq of await getAllKeysFromIndex(s.changes, 'project', projectId)) await remove(s.changes, seq);
  await remove(s.projects, projectId);
  await remove(s.meta, `head:${projectId}`);
  await remove(s.meta, projectKey(projectId));
}
