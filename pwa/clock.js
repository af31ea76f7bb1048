// The hybrid logical clock that stamps record revisions (docs/sync.md): "<15-digit ms>-<6-digit
// counter>-<device id>", compared as strings; the format is py/tejas/schemas/sync.json's (the server
// reads the same file). The clock takes max(now, highest revision seen), so it never goes back even
// when the wall clock does, and counts up on ties. Pure functions: db.js keeps the state in the `meta`
// store, inside the transaction of each write; sync's pull observes the revisions it receives.
import SYNC_SCHEMA from './py/tejas/schemas/sync.json' with { type: 'json' };

const { ms_digits: MS_DIGITS, counter_digits: COUNTER_DIGITS } = SYNC_SCHEMA.revision;
const REV = new RegExp(SYNC_SCHEMA.$defs.rev.pattern);
const MAX_COUNTER = 10 ** COUNTER_DIGITS - 1;

/** The revision string of clock state {ms, counter} on `device`. */
export function formatRev({ ms, counter }, device) {
  return `${String(ms).padStart(MS_DIGITS, '0')}-${String(counter).padStart(COUNTER_DIGITS, '0')}-${device}`;
}

/** {ms, counter, device} of a revision string; throws on anything else. */
export function parseRev(rev) {
  if (typeof rev !== 'string' || !REV.test(rev)) throw new Error(`not a revision: ${JSON.stringify(rev)}`);
  const [ms, counter, ...device] = rev.split('-'); // the device may hold '-' itself
  return { ms: Number(ms), counter: Number(counter), device: device.join('-') };
}

/** The clock state after a local event at wall-clock time `now` (ms). */
export function nextClock({ ms, counter }, now) {
  if (now > ms) return { ms: now, counter: 0 };
  // A counter that would overflow its digits borrows the next millisecond instead.
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
