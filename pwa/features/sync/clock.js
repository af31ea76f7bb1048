// The hybrid logical clock that stamps record revisions (docs/sync.md): "<15-digit ms>-<6-digit
// counter>-<device id>", compared as strings. The clock takes max(now, highest revision seen), so it
// never goes back even when the wall clock does, and counts up on ties. Pure functions: db.js keeps
// the state in the `meta` store, inside the transaction of each write.

const MAX_COUNTER = 999_999;

/** The revision string of clock state {ms, counter} on `device`. */
export function formatRev({ ms, counter }, device) {
  return `${String(ms).padStart(15, '0')}-${String(counter).padStart(6, '0')}-${device}`;
}

/** {ms, counter, device} of a revision string; throws on anything else. */
export function parseRev(rev) {
  const match = /^(\d{15})-(\d{6})-([A-Za-z0-9_-]{1,64})$/.exec(rev ?? '');
  if (!match) throw new Error(`not a revision: ${JSON.stringify(rev)}`);
  return { ms: Number(match[1]), counter: Number(match[2]), device: match[3] };
}

/** The clock state after a local event at wall-clock time `now` (ms). */
export function nextClock({ ms, counter }, now) {
  if (now > ms) return { ms: now, counter: 0 };
  // A counter that would overflow its 6 digits borrows the next millisecond instead.
  return counter >= MAX_COUNTER ? { ms: ms + 1, counter: 0 } : { ms, counter: counter + 1 };
}

/** The clock state after seeing a remote revision: never behind it, so the next local stamp sorts after it. */
export function observeClock(state, remoteRev) {
  const remote = parseRev(remoteRev);
  if (remote.ms > state.ms || (remote.ms === state.ms && remote.counter > state.counter)) {
    return { ms: remote.ms, counter: remote.counter };
  }
  return state;
}

/** The greater of two revisions (either may be null). */
export const maxRev = (a, b) => (a && b ? (a > b ? a : b) : a ?? b ?? null);
