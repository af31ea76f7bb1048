// The outgoing queue: the change log read as one pending change per record (coalesced: the record's
// current state, read when it is sent, under the mutation id of its latest log entry), snapshots
// logged when a project's sync is switched on, and entries deleted once the server acknowledged them.
import { KINDS, get, getAll, getAllFromIndex, put, remove, transaction } from '../../db.js';
import { dataOf } from './records.js';
import { getMeta, projectKey, putMeta } from './settings.js';

const RECORD_STORES = ['projects', 'classes', 'samples', 'models'];

/** The change log grouped per record: [{projectId, kind, id, seq (latest), rev, deleted, seqs}] in seq order. */
export function groupEntries(entries) {
  const byRecord = new Map();
  for (const entry of entries) {
    const key = `${entry.kind}\u0000${entry.id}`;
    const group = byRecord.get(key);
    if (!group) byRecord.set(key, { ...entry, seqs: [entry.seq] });
    else {
      group.seqs.push(entry.seq);
      if (entry.seq > group.seq) Object.assign(group, { seq: entry.seq, rev: entry.rev, deleted: entry.deleted });
    }
  }
  return [...byRecord.values()].sort((a, b) => a.seq - b.seq);
}

/** Pending records of the projects in `synced` (a Set of ids), oldest latest-write first. */
export async function pendingRecords(synced) {
  const entries = await transaction(['changes'], 'readonly', ({ changes }) => getAll(changes));
  return groupEntries(entries.filter((e) => synced.has(e.projectId)));
}

/** {projectId: number of records waiting} for the projects in `synced`, from the change log's `entries`. */
export function pendingCounts(entries, synced) {
  const counts = {};
  for (const group of groupEntries(entries.filter((e) => synced.has(e.projectId)))) {
    counts[group.projectId] = (counts[group.projectId] ?? 0) + 1;
  }
  return counts;
}

/** The stored record a change-log group is about (a project for a head), or undefined. */
function readRecord(s, group) {
  const { store } = KINDS[group.kind];
  if (group.kind === 'sample') return get(s[store], [group.projectId, group.id.slice(group.id.lastIndexOf('/') + 1)]);
  return get(s[store], group.kind === 'head' ? group.projectId : group.id);
}

/**
 * The changes to push for `groups`: each record's current state with its revision, or its tombstone.
 * A group whose record is gone without a logged delete (a pull deleted it) sends nothing: `change` null.
 */
export async function currentChanges(groups) {
  const states = await transaction(RECORD_STORES, 'readonly', (s) => Promise.all(groups.map((g) => readRecord(s, g))));
  return Promise.all(groups.map(async (group, i) => {
    const record = states[i];
    const base = { mutation: group.seq, kind: group.kind, id: group.id, project: group.projectId };
    const live = record && (group.kind !== 'head' || record.headRev);
    if (live) {
      const rev = group.kind === 'head' ? record.headRev : record.rev;
      return { group, change: { ...base, rev, deleted: false, data: await dataOf(group.kind, record) }, record };
    }
    if (!group.deleted) return { group, change: null, record: null };
    return { group, change: { ...base, rev: group.rev, deleted: true, data: null }, record: null };
  }));
}

/** Delete acknowledged change-log entries (by seq). */
export const acknowledge = (seqs) => transaction(['changes'], 'readwrite', async ({ changes }) => {
  for (const seq of seqs) await remove(changes, seq);
});

/**
 * Switch a project's sync on or off (device-local). On: its unsent log entries are replaced by a
 * snapshot of every record it holds (their current revisions, under new mutation ids; tombstones of
 * records deleted meanwhile kept), so the server gets all of it even though earlier entries carried
 * mutation ids it has passed. A project that synced before pulls again from the start, to catch up
 * with changes made elsewhere while it was off.
 */
export function setProjectSync(projectId, on) {
  return transaction([...RECORD_STORES, 'changes', 'meta'], 'readwrite', async (s) => {
    const key = projectKey(projectId);
    const before = await getMeta(s.meta, key);
    if (!on) {
      if (before) await putMeta(s.meta, key, { ...before, on: false });
      return false;
    }
    const project = await get(s.projects, projectId);
    if (!project) throw new Error(`No project with id ${projectId}.`);
    if (before?.on) return true;
    const old = groupEntries(await getAllFromIndex(s.changes, 'project', projectId));
    for (const group of old) for (const seq of group.seqs) await remove(s.changes, seq);
    const log = (kind, id, rev, deleted = false) => put(s.changes, { projectId, kind, id, rev, deleted });
    await log('project', projectId, project.rev);
    if (project.headRev) await log('head', projectId, project.headRev);
    const live = new Set(['project', 'head'].map((k) => `${k}\u0000${projectId}`));
    for (const kind of ['class', 'sample', 'model']) {
      for (const record of await getAllFromIndex(s[KINDS[kind].store], 'project', projectId)) {
        const id = KINDS[kind].id(record);
        live.add(`${kind}\u0000${id}`);
        await log(kind, id, record.rev);
      }
    }
    for (const group of old) {
      if (group.deleted && !live.has(`${group.kind}\u0000${group.id}`)) await log(group.kind, group.id, group.rev, true);
    }
    await putMeta(s.meta, key, { ...before, on: true, enabledAt: new Date().toISOString(), notice: null, error: null });
    if (before) {
      const cursor = await getMeta(s.meta, 'cursor');
      if (cursor) await putMeta(s.meta, 'cursor', { ...cursor, value: '0' });
    }
    return true;
  });
}
