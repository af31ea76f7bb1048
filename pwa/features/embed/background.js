// Background embedding: the features Train needs are computed while images (or texts) arrive, so
// pressing Train finds them cached. Low priority: a few items per embed-worker call, no new call while
// a prediction or training is in flight (foreground calls go first), resumable (a scan of what has
// no cached features, on opening a project and after every committed change to it), cancellable.
// Correctness never depends on it: training still embeds whatever is missing.
import { CHANGES_CHANNEL, getAllKeys, transaction } from '../../db.js';
import { REMOTE_CHANGES_CHANNEL } from '../../protocol.js';
import { getProject, listSamples, projectKind } from '../dataset/projects.js';
import { ensureEmbeddings, loadManifest } from '../train/engine.js';
import { backboneId } from '../artifacts.js';

/** engine.js's augmentationId of plain (unaugmented) features: the cache entries training looks up. */
const NO_AUGMENTATION = 'none';

/** Items per embed-worker call: a foreground call waits behind at most one such call. */
export const CHUNK_SIZE = 8;

const isAbort = (error) => error?.name === 'AbortError';
/** Thrown inside a project's round when its samples changed: the round ends and a rescan follows. */
const RESCAN = Symbol('rescan');

/**
 * The page's background embedder. `embedImages`/`embedTexts` are the worker calls it makes (the same
 * options as training's, so the same cache entries), `projectArtifacts(projectId)` the artifacts a
 * project's training would use.
 * @param {{embedImages: Function, embedTexts: Function, projectArtifacts: (projectId: string) => Promise<string>,
 *   chunkSize?: number}} deps
 */
export function createBackgroundEmbedding({ embedImages, embedTexts, projectArtifacts, chunkSize = CHUNK_SIZE }) {
  const watched = new Set();
  const dirty = new Set();      // watched projects to scan (again)
  const states = new Map();     // projectId → status (see status())
  const unreadable = new Map(); // projectId → Set of content ids the embedder could not read
  const listeners = new Set();
  let focus = null;             // the project opened last goes first
  let foregroundCalls = 0;
  let paused = false;
  let inflight = null;          // the worker call running now (a foreground call waits for it)
  let controller = new AbortController();
  let draining = null;
  let wake = null;
  let channels = null;

  const emptyState = () => ({ total: 0, pending: 0, failed: 0, running: false, waiting: false, scanned: false, error: null });

  function setState(projectId, change) {
    const state = { ...(states.get(projectId) ?? emptyState()), ...change };
    states.set(projectId, state);
    for (const listener of [...listeners]) listener(projectId, state);
  }

  function kick() {
    wake?.();
    if (!draining) draining = drain().finally(() => { draining = null; if (dirty.size && !paused) kick(); });
  }

  const blocked = () => foregroundCalls > 0 || paused;

  /** Resolves when no foreground call is in flight and background work is not paused. */
  async function turn(projectId) {
    while (blocked()) {
      if (projectId) setState(projectId, { waiting: true });
      await new Promise((resolve) => { wake = resolve; });
    }
    if (projectId && states.get(projectId)?.waiting) setState(projectId, { waiting: false });
  }

  async function drain() {
    for (;;) {
      await turn();
      const projectId = dirty.has(focus) ? focus : dirty.values().next().value;
      if (projectId === undefined) return;
      dirty.delete(projectId);
      try {
        await embedProject(projectId);
      } catch (error) {
        if (error === RESCAN) continue;
        if (isAbort(error)) {
          setState(projectId, { running: false, waiting: false });
          continue;
        }
        if (/^No project with id/.test(error.message)) watched.delete(projectId);  // deleted meanwhile
        setState(projectId, { running: false, waiting: false, error: error.message });
      }
    }
  }

  /**
   * ensureEmbeddings of `part` once it is background's turn. Started synchronously after the turn
   * check and kept as `inflight`, so a foreground call arriving now waits for it, never overlaps it.
   */
  async function chunk(projectId, part, options) {
    do await turn(projectId); while (blocked());
    if (dirty.has(projectId)) throw RESCAN;
    const work = ensureEmbeddings(part, options);
    inflight = work.catch(() => null);
    return work;
  }

  /** Samples of the project with no cached features for `backbone` (oldest first, as they were added). */
  async function missingSamples(projectId, backbone) {
    const samples = await listSamples(projectId);
    // One read of the store's keys ([contentId, backboneId, augmentationId]), not a count per sample: a
    // scan runs after every commit, and per-sample requests made a 5,000-image import's scans quadratic
    // (main-thread tasks up to ~190 ms).
    const keys = await transaction(['embeddings'], 'readonly', ({ embeddings }) => getAllKeys(embeddings));
    const have = new Set(keys.filter(([, b, a]) => b === backbone && a === NO_AUGMENTATION).map(([contentId]) => contentId));
    return { samples, missing: samples.filter((s) => !have.has(s.contentId)) };
  }

  async function embedProject(projectId) {
    const kind = projectKind(await getProject(projectId));
    const artifacts = await projectArtifacts(projectId);
    const backbone = backboneId(await loadManifest(artifacts));
    const model = kind === 'text' ? 'encoder' : 'backbone';
    const bad = unreadable.get(projectId) ?? new Set();
    unreadable.set(projectId, bad);
    const { samples, missing: all } = await missingSamples(projectId, backbone);
    const missing = all.filter((s) => !bad.has(s.contentId));
    let failed = all.length - missing.length;
    let pending = missing.length;
    setState(projectId, { total: samples.length, pending, failed, running: pending > 0, scanned: true, error: null });
    for (let start = 0; start < missing.length; start += chunkSize) {
      const part = missing.slice(start, start + chunkSize);
      const options = { artifacts, model, signal: controller.signal, embedImages, embedTexts };
      try {
        await chunk(projectId, part, options);
      } catch (error) {
        if (isAbort(error) || error === RESCAN) throw error;
        // one unreadable item fails its whole call: the rest one at a time, the bad ones remembered
        for (const sample of part) {
          await chunk(projectId, [sample], options).catch((e) => {
            if (isAbort(e) || e === RESCAN) throw e;
            bad.add(sample.contentId);
          });
        }
      }
      pending -= part.length;
      failed += part.filter((s) => bad.has(s.contentId)).length;
      setState(projectId, { pending, failed, running: pending > 0 });
    }
    setState(projectId, { running: false });
  }

  function listen() {
    if (channels || typeof BroadcastChannel === 'undefined') return;
    const onChange = ({ data }) => {
      for (const projectId of data?.projects ?? []) if (watched.has(projectId)) dirty.add(projectId);
      if (dirty.size) kick();
    };
    channels = [new BroadcastChannel(CHANGES_CHANNEL), new BroadcastChannel(REMOTE_CHANGES_CHANNEL)];
    for (const channel of channels) channel.onmessage = onChange;
  }

  const isReady = (projectId) => {
    const state = states.get(projectId);
    return Boolean(state?.scanned) && !dirty.has(projectId) && !state.running && state.pending === 0;
  };

  const api = {
    /**
     * Keep the project's features computed: scan it now (what a reload or another tab left undone) and
     * after every committed change to it (files, zip, webcam, drawing, sync pull). Idempotent.
     */
    watch(projectId) {
      listen();
      watched.add(projectId);
      focus = projectId;
      dirty.add(projectId);
      kick();
    },

    /** Stop following the project (work already done stays cached). */
    unwatch(projectId) {
      watched.delete(projectId);
      dirty.delete(projectId);
    },

    /**
     * The project's background state: {total: its samples, pending: still without features, failed:
     * unreadable ones, running, waiting (for a foreground call), scanned (at least once), error}.
     */
    status(projectId) {
      return { ...(states.get(projectId) ?? emptyState()), ready: isReady(projectId) };
    },

    /** Calls `listener(status)` on every change of the project's status (now too); returns unsubscribe. */
    subscribe(projectId, listener) {
      const each = (id) => { if (id === projectId) listener(api.status(projectId)); };
      listeners.add(each);
      listener(api.status(projectId));
      return () => listeners.delete(each);
    },

    /**
     * Resolves with the status once every sample of the project (as of this call or later) has cached
     * features or is unreadable; watches the project. Rejects with AbortError on `signal`.
     */
    ready(projectId, { signal } = {}) {
      api.watch(projectId);
      return new Promise((resolve, reject) => {
        const done = () => {
          if (!isReady(projectId) && !states.get(projectId)?.error) return;
          listeners.delete(check);
          resolve(api.status(projectId));
        };
        const check = (id) => { if (id === projectId) done(); };
        listeners.add(check);
        signal?.addEventListener('abort', () => {
          listeners.delete(check);
          reject(new DOMException('Cancelled', 'AbortError'));
        }, { once: true });
      });
    },

    /**
     * Run `work` (a prediction, a training, a foreground embed call) ahead of background work: no new
     * background call starts until it settles, and it starts once the one background call in flight
     * (at most `chunkSize` items) is done, so the two never share the worker. A `signal` aborted
     * meanwhile rejects with AbortError before `work` starts.
     */
    async foreground(work, { signal } = {}) {
      foregroundCalls += 1;
      try {
        await inflight;
        if (signal?.aborted) throw new DOMException('Cancelled', 'AbortError');  // while it waited
        return await work();
      } finally {
        foregroundCalls -= 1;
        if (foregroundCalls === 0) wake?.();
      }
    },

    /** Start no new background call until resume() (the one in flight finishes). */
    pause() { paused = true; },

    /** Continue after pause(). */
    resume() {
      paused = false;
      wake?.();
      if (dirty.size) kick();
    },

    /** Cancel the background call in flight and forget queued scans (watched projects rescan on change). */
    cancel() {
      controller.abort();
      controller = new AbortController();
      dirty.clear();
      wake?.();
    },
  };
  return api;
}
