// The app's side of the sync record format, answering one JSON request per stdin line:
// {"kind": "parseRev"|"formatRev"|"change"|"constants", "args": [...]} -> {"value": ...} or {"error": message}.
// "change" makes the change the app pushes for a stored record (features/sync/records.js's dataOf and the
// clock's formatRev); a model's parameters travel as a list of numbers and become a Float32Array here.
import { load, serve } from './js_serve.mjs';

const { formatRev, parseRev } = await load('clock.js');
const { KINDS: STORE_KINDS } = await load('db.js');
const { MAX_DATA_BYTES, dataOf } = await load('features/sync/records.js');

async function change(kind, record, { mutation, clock, device }) {
  const stored = kind === 'model' ? { ...record, parameters: Float32Array.from(record.parameters) } : record;
  const projectId = kind === 'project' || kind === 'head' ? record.id : record.projectId;
  return {
    mutation, kind, id: STORE_KINDS[kind].id(stored), project: projectId, rev: formatRev(clock, device),
    deleted: false, data: await dataOf(kind, stored),
  };
}

const KINDS = {
  parseRev: (rev) => parseRev(rev),
  formatRev: (state, device) => formatRev(state, device),
  change,
  constants: () => ({ kinds: Object.keys(STORE_KINDS), maxDataBytes: MAX_DATA_BYTES }),
};

await serve(KINDS);
