// Deterministic stratified split, the same algorithm and refusals as the Python core's tejas.splits
// (a property test compares them): per class, samples ranked by sha256("seed:id"), the first
// round(n·share) validate. Refusals are worded by py/tejas/schemas/rules.json.
import { sha256Hex } from '../dataset/images.js';
import { RULES, formatFloat, formatNumber, message, quote } from '../rules.js';

const SAYS = RULES.split.messages;

/** Python's round() (half to even) for the validation count. */
function roundHalfEven(x) {
  const f = Math.floor(x);
  return x - f === 0.5 ? (f % 2 === 0 ? f : f + 1) : Math.round(x);
}

function check(ids, labels, share, seed) {
  if (ids.length !== labels.length) throw new Error(message(SAYS.length, { ids: ids.length, labels: labels.length }));
  if (!(typeof share === 'number' && share >= 0 && share < 1)) throw new Error(message(SAYS.share, { share: formatFloat(share) }));
  if (!Number.isSafeInteger(seed)) throw new Error(message(SAYS.seed, { max: RULES.max_exact_integer, seed: formatNumber(seed) }));
  const seen = new Set();
  for (const id of ids) {
    if (seen.has(id)) throw new Error(message(SAYS.duplicate, { id: quote(String(id)) }));
    seen.add(id);
  }
}

/** @returns {Promise<{train: string[], validation: string[]}>} ids in their input order */
export async function stratifiedSplit(ids, labels, validationShare = 0.2, seed = 0) {
  check(ids, labels, validationShare, seed);
  const byClass = new Map();
  ids.forEach((id, i) => byClass.set(labels[i], [...(byClass.get(labels[i]) ?? []), id]));
  const encoder = new TextEncoder();
  const validation = new Set();
  for (const members of byClass.values()) {
    const n = members.length;
    const take = n < 2 || validationShare === 0 ? 0 : Math.min(Math.max(roundHalfEven(n * validationShare), 1), n - 1);
    const ranked = await Promise.all(members.map(async (id) => [await sha256Hex(encoder.encode(`${seed}:${id}`)), id]));
    ranked.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    ranked.slice(0, take).forEach(([, id]) => validation.add(id));
  }
  return { train: ids.filter((id) => !validation.has(id)), validation: ids.filter((id) => validation.has(id)) };
}
