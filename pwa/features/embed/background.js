// Background embedding: the features Train needs are computed while images (or texts) arrive, so
// pressing Train finds them cached. Low priority: a few items per embed-worker call, no new call while
// a prediction or training is in flight (foreground calls go first), resumable (a scan of what has
// no cached features, on opening a project and after every committed change to it), cancellable.
// Correctness never depends on it: training still embeds whatever is missing.
// One tab at a time embeds a project (a Web Lock per project); the project's other tabs recount on the
// owner's announcements and take over when it lets go (closed, reloaded, paused, moved on to another
// project). Foreground calls never wait on another tab. Without Web Locks every tab embeds for itself.
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

/** The Web Lock held while a tab embeds a project (same origin: all its tabs share one IndexedDB). */
const lockName = (projectId) => `tejas-embed:${projectId}`;

/** Where the tab embedding a project announces each stored call, {projects: [id]}: its other tabs recount. */
export const EMBEDDED_CHANNEL = 'tejas-embedded';

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
  const elsewhere = new Map();  // projectId → AbortController of the wait for another tab's lock on it
  const listeners = new Set();
  let focus = null;             // the project opened last goes first
  let foregroundCalls = 0;
  let paused = false;
  let inflight = null;          // the worker call running now (a foreground call waits for it)
  let controller = new AbortController();
  let draining = null;
  let wake = null;
  let channels = null;

  const emptyState = () => ({
    total: 0, pending: 0, failed: 0, running: false, waiting: false, elsewhere: false, scanned: false, error: null,
  });

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

  /**
   * Inside a project's round, so that its lock is let go of promptly: end it when cancelled (AbortError),
   * when its samples changed or it is no longer watched (RESCAN), and also when paused or once the
   * project opened last has work (RESCAN, the project staying queued; another tab may go on with it).
   */
  function checkRound(projectId, signal) {
    signal.throwIfAborted();
    if (dirty.has(projectId) || !watched.has(projectId)) throw RESCAN;
    // the open project goes first, unless another tab embeds it (its announcements would end every round here)
    if (paused || (focus !== projectId && dirty.has(focus) && !elsewhere.has(focus))) {
      dirty.add(projectId);
      throw RESCAN;
    }
  }

  /**
   * Resolves when no foreground call is in flight and background work is not paused; inside a project's
   * round (`projectId` given) it may end the round meanwhile (checkRound).
   */
  async function turn(projectId, signal) {
    while (blocked()) {
      if (projectId) {
        checkRound(projectId, signal);
        setState(projectId, { waiting: true });
      }
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
        if (error === RESCAN || isAbort(error)) {
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
    do await turn(projectId, options.signal); while (blocked());
    checkRound(projectId, options.signal);
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

  /**
   * `work()` holding the project's lock. When another tab holds it: nothing now, and a wait for that
   * lock (not holding it) rescans the project once the other tab lets go of it.
   */
  async function exclusively(projectId, work) {
    const locks = globalThis.navigator?.locks;
    if (!locks) return work();  // no Web Locks: every tab embeds for itself
    const ran = await locks.request(lockName(projectId), { ifAvailable: true }, async (lock) => {
      if (lock) await work();
      return Boolean(lock);
    });
    if (ran || elsewhere.has(projectId)) return;
    const waiting = new AbortController();
    elsewhere.set(projectId, waiting);
    setState(projectId, { elsewhere: true });
    const done = () => {
      elsewhere.delete(projectId);
      setState(projectId, { elsewhere: false });
    };
    locks.request(lockName(projectId), { signal: waiting.signal }, () => {}).then(() => {
      done();
      // finished, or closed/reloaded/paused midway: go on with whatever it left
      if (watched.has(projectId)) {
        dirty.add(projectId);
        kick();
      }
    }, done);
  }

  /** Stop waiting for other tabs' locks (on one project, or on all). */
  function stopWaiting(projectId) {
    for (const [id, waiting] of elsewhere) if (projectId === undefined || id === projectId) waiting.abort();
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
    setState(projectId, { total: samples.length, pending, failed, running: false, scanned: true, error: null });
    // Only the tab holding the lock embeds; the others keep these counts fresh from its announcements.
    // (ensureEmbeddings sends only what is still uncached, whatever another tab stored since the scan.)
    const options = { artifacts, model, signal: controller.signal, embedImages, embedTexts };
    if (pending) await exclusively(projectId, async () => {
      setState(projectId, { running: true });
      for (let start = 0; start < missing.length; start += chunkSize) {
        const part = missing.slice(start, start + chunkSize);
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
        announce(projectId);
        setState(projectId, { pending, failed, running: pending > 0 });
      }
    });
    setState(projectId, { running: false });
  }

  /** Tell the project's other tabs that a call's features are stored (they recount). */
  const announce = (projectId) => channels?.embedded.postMessage({ projects: [projectId] });

  function listen() {
    if (channels || typeof BroadcastChannel === 'undefined') return;
    const onChange = ({ data }) => {
      for (const projectId of data?.projects ?? []) if (watched.has(projectId)) dirty.add(projectId);
      if (dirty.size) kick();
    };
    channels = {
      local: new BroadcastChannel(CHANGES_CHANNEL),
      remote: new BroadcastChannel(REMOTE_CHANGES_CHANNEL),
      embedded: new BroadcastChannel(EMBEDDED_CHANNEL),  // also announces this tab's calls (never heard here)
    };
    for (const channel of Object.values(channels)) channel.onmessage = onChange;
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
      stopWaiting(projectId);
      wake?.();
    },

    /**
     * The project's background state: {total: its samples, pending: still without features, failed:
     * unreadable ones, running (in this tab), waiting (for a foreground call), elsewhere (another tab is
     * embedding it; this one takes over when that one lets go), scanned (at least once), error}.
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

    /**
     * Start no new background call until resume() (the one in flight finishes); the project's lock is
     * let go meanwhile, so another tab may go on with it.
     */
    pause() {
      paused = true;
      wake?.();
    },

    /** Continue after pause(). */
    resume() {
      paused = false;
      wake?.();
      if (dirty.size) kick();
    },

    /**
     * Cancel the background call in flight, forget queued scans and stop waiting for other tabs
     * (watched projects rescan on change).
     */
    cancel() {
      stopWaiting();
      controller.abort();
      controller = new AbortController();
      dirty.clear();
      wake?.();
    },
  };
  return api;
}
