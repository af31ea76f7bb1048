// Server training as the app follows it: start a job (after a sync, so the server has the latest
// data), read its event stream live, reconnect after a cut with Last-Event-ID (backing off; waiting for
// the network when offline), and store the result as the project's model when it is done. Active jobs
// are remembered per project in IndexedDB (`meta` key "serverJobs"), so a closed tab or a lost network
// loses nothing: the app picks them up again on start, on the Train screen and when back online.
import * as api from './api.js';
import { importJobResult, importedModel } from './results.js';
import { readMeta, updateMeta } from '../sync/settings.js';

const KEY = 'serverJobs';
const MAX_DELAY_MS = 30_000;

/** projectId → the followed job: {jobId, status, connection, job, history, epoch, device, error, model, listeners} */
const watches = new Map();

export const serverRun = (projectId) => watches.get(projectId) ?? null;

const added = new Set();
/** Call `listener(watch)` whenever a job starts being followed; returns a function that stops it. */
export function onServerRun(listener) {
  added.add(listener);
  return () => added.delete(listener);
}

/** {jobId: {projectId, server, created}} of jobs started here and not yet imported or ended. */
export const rememberedJobs = async () => (await readMeta(KEY))[KEY]?.jobs ?? {};

const remember = (jobId, entry) => updateMeta(KEY, (old) => ({ jobs: { ...(old?.jobs ?? {}), [jobId]: entry } }));
const forget = (jobId) => updateMeta(KEY, (old) => {
  const jobs = { ...(old?.jobs ?? {}) };
  delete jobs[jobId];
  return { jobs };
});

function newWatch(projectId, jobId, status) {
  const watch = {
    projectId, jobId, status, connection: 'live', job: null, history: [], epoch: null, device: null, deviceName: null,
    position: null, error: null, model: null, result: null, listeners: new Set(), controller: new AbortController(),
  };
  watch.notify = () => watch.listeners.forEach((listener) => listener(watch));
  watches.set(projectId, watch);
  added.forEach((listener) => listener(watch));
  return watch;
}

/** An event of the job's stream applied to what the app shows (docs/jobs.md "Event stream"). */
export function applyJobEvent(watch, { event, data }) {
  switch (event) {
    case 'queued':
      Object.assign(watch, { status: 'queued', position: data.position ?? null });
      break;
    case 'started':
      Object.assign(watch, { status: 'running', notice: null, device: data.device, deviceName: data.device_name ?? null, started: data });
      // a job resumed from a checkpoint runs its later epochs again
      if (data.resumed_from_epoch) watch.history = watch.history.filter((e) => e.epoch <= data.resumed_from_epoch);
      break;
    case 'epoch':
      watch.status = 'running';
      watch.epoch = data;
      watch.history = [...watch.history.filter((e) => e.epoch < data.epoch), {
        epoch: data.epoch, loss: data.loss, trainAccuracy: data.train_accuracy,
        validationAccuracy: data.validation_accuracy ?? undefined,
      }];
      break;
    case 'checkpoint':
      watch.checkpoint = data.epoch;
      break;
    case 'notice':  // the job goes on: the queue is away for now, a refused checkpoint, …
      watch.notice = data.message ?? null;
      break;
    case 'released':  // its worker stopped; queued again until another one resumes it
      Object.assign(watch, { status: 'queued', position: null, notice: data.message ?? null });
      break;
    case 'done':
      Object.assign(watch, { status: 'importing', result: data });
      break;
    case 'failed':
      Object.assign(watch, { status: 'failed', error: data.reason || 'The server could not train this project.' });
      break;
    case 'cancelled':
      watch.status = 'cancelled';
      break;
    default:
  }
  watch.notify();
}

const sleep = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(done, ms);
  function done() {
    clearTimeout(timer);
    removeEventListener('online', done);
    signal.removeEventListener('abort', done);
    resolve();
  }
  addEventListener('online', done);  // back online: try at once
  signal.addEventListener('abort', done);
});

/** Follow a watch's job until it ends; then import its result or forget it. */
async function follow(watch, { defaultArtifacts }) {
  const { signal } = watch.controller;
  let lastEventId = null;
  let delay = 1000;
  for (;;) {
    if (signal.aborted) return;
    try {
      if (!navigator.onLine) throw new api.SyncError('offline');
      const connection = await api.account();
      watch.connection = 'live';
      watch.notify();
      const { terminal } = await api.readEvents(connection, watch.jobId, {
        lastEventId, signal, onEvent: (e) => {
          if (e.id !== null) lastEventId = e.id;
          delay = 1000;
          applyJobEvent(watch, e);
        },
      });
      if (terminal) break;
    } catch (error) {
      if (error.name === 'AbortError') return;
      if (error.status === 404 || error.status === 403) {
        Object.assign(watch, { status: 'failed', error: 'The server no longer has this job (it was deleted or expired).' });
        await forget(watch.jobId);
        watch.notify();
        return;
      }
      if (error.status === 401) {
        // signed out or the sign-in expired: keep the job; it is picked up again after signing in
        Object.assign(watch, { connection: 'signed-out' });
        watch.notify();
        watches.delete(watch.projectId);
        return;
      }
    }
    watch.connection = 'reconnecting';
    watch.notify();
    await sleep(delay, signal);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
  if (watch.status === 'importing') {
    try {
      const connection = await api.account();
      watch.job = await api.getJob(connection, watch.jobId);
      watch.model = await importJobResult(connection, watch.projectId, watch.job, { defaultArtifacts, signal });
      watch.status = 'done';
      await forget(watch.jobId);
    } catch (error) {
      // kept remembered: the next start, Train screen or reconnect tries the import again
      Object.assign(watch, { status: 'failed', error: `Training finished, but storing its model failed: ${error.message}` });
      watches.delete(watch.projectId);
    }
  } else {
    await forget(watch.jobId);
  }
  watch.connection = 'live';
  watch.notify();
}

/**
 * Start training `projectId` on the server: sync first (`syncNow`), then POST /api/jobs with `options`
 * ({mode, epochs, …} as in docs/jobs.md), and follow it. Returns the watch at once; its status says
 * how far it got ('syncing', 'starting', 'queued', 'running', 'importing', 'done', 'failed', 'cancelled').
 */
export function startServerTraining(projectId, options, { syncNow, defaultArtifacts }) {
  const previous = watches.get(projectId);
  if (previous && !['done', 'failed', 'cancelled'].includes(previous.status)) return previous;
  const watch = newWatch(projectId, null, 'syncing');
  (async () => {
    try {
      const status = await syncNow();
      const project = status.projects?.find((p) => p.id === projectId);
      if (project?.pending) throw new Error(`${project.pending} change(s) of this project did not reach the server; sync, then try again.`);
      watch.status = 'starting';
      watch.notify();
      const connection = await api.account();
      const job = await api.createJob(connection, { project: projectId, ...options });
      Object.assign(watch, { jobId: job.id, job, status: job.status === 'running' ? 'running' : 'queued' });
      await remember(job.id, { projectId, server: connection.server, created: job.created });
      watch.notify();
      await follow(watch, { defaultArtifacts });
    } catch (error) {
      Object.assign(watch, { status: 'failed', error: error.message });
      watch.notify();
    }
  })();
  return watch;
}

/** Ask the server to stop the job (it answers with a `cancelled` event within seconds). */
export async function cancelServerTraining(projectId) {
  const watch = watches.get(projectId);
  if (!watch?.jobId) return;
  await api.cancelJob(await api.account(), watch.jobId);
}

/**
 * Pick up remembered jobs nobody follows yet (after a reload, a closed tab, a reconnect): follow each
 * (the stream replays its events from the start) and import finished ones. Safe to call often.
 */
export async function resumeServerJobs({ defaultArtifacts } = {}) {
  let signedIn = false;
  try {
    await api.account();
    signedIn = true;
  } catch { /* signed out: remembered jobs wait */ }
  if (!signedIn) return;
  for (const [jobId, { projectId }] of Object.entries(await rememberedJobs())) {
    const current = watches.get(projectId);
    if (current?.jobId === jobId && !['failed', 'cancelled'].includes(current.status)) continue;
    if (await importedModel(projectId, jobId).catch(() => null)) {
      await forget(jobId);
      continue;
    }
    const watch = newWatch(projectId, jobId, 'queued');
    follow(watch, { defaultArtifacts });
  }
}
