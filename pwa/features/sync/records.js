// Local records ⇄ the changes of docs/sync.md: what of each record travels (`data`), and the record a
// change becomes here. Model parameters travel as a blob (float32 little-endian bytes), named in the
// model's data by their sha256 and length (the number of float32 values).
import SYNC_SCHEMA from '../../py/tejas/schemas/sync.json' with { type: 'json' };
import { sha256Hex } from '../dataset/images.js';

/** The bytes of a model's parameters as stored on the server: float32 little-endian. */
export function parameterBytes(parameters) {
  const bytes = new Uint8Array(parameters.buffer, parameters.byteOffset, parameters.byteLength);
  if (new Uint8Array(new Float32Array([1]).buffer)[3] === 0x3f) return bytes;
  // a big-endian machine (none ships a browser today): swap each float's bytes
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += 4) out.set([bytes[i + 3], bytes[i + 2], bytes[i + 1], bytes[i]], i);
  return out;
}

/** float32 little-endian bytes back into a Float32Array. */
export function parametersFrom(bytes) {
  if (bytes.byteLength % 4) throw new Error(`model parameters of ${bytes.byteLength} bytes are not whole float32 values`);
  const copy = new Uint8Array(bytes);
  const view = new DataView(copy.buffer);
  return Float32Array.from({ length: copy.length / 4 }, (_, i) => view.getFloat32(i * 4, true));
}

/** The change `data` of a stored record (`project` for a `head`: the project record). */
export async function dataOf(kind, record) {
  switch (kind) {
    // kind travels only for text projects: image projects' data stays as earlier versions sent it
    case 'project': return { name: record.name, created: record.created, ...(record.kind === 'text' ? { kind: 'text' } : {}) };
    case 'class': return { name: record.name, order: record.order, created: record.created };
    case 'sample': {
      const { contentId, classId, name, source, added, format, width, height, size } = record;
      return { contentId, classId, name, source, added, format, width, height, size };
    }
    case 'model': {
      const { projectId, parameters, rev, ...rest } = record;
      return fitted({ ...rest, parameters: { sha256: await sha256Hex(parameterBytes(parameters)), length: parameters.length } });
    }
    case 'head': return { modelId: record.modelId ?? null };
    default: throw new Error(`unknown record kind "${kind}"`);
  }
}

/** The server's limit on one record's data (docs/sync.md; sync.json's max_record_bytes), as compact JSON. */
export const MAX_DATA_BYTES = SYNC_SCHEMA.max_record_bytes;

/**
 * A model's data within MAX_DATA_BYTES: a model of a large project lists every image id in its split
 * and confusion-matrix cells (~80 bytes per image); past the limit those lists stay on this device
 * (the model itself, its metrics and history travel whole), and `trimmed` says so.
 */
function fitted(data) {
  const size = (value) => new TextEncoder().encode(JSON.stringify(value)).length;
  if (size(data) <= MAX_DATA_BYTES) return data;
  return {
    ...data, split: null, metrics: { ...data.metrics, cells: {} },
    trimmed: 'the lists of image ids (split, confusion-matrix cells) stayed on the device that trained it: over the record size limit',
  };
}

/** The sha256 of the blob a change's data refers to (image or model parameters), or null. */
export function blobOf(change) {
  if (change.deleted || !change.data) return null;
  if (change.kind === 'sample') return change.data.contentId;
  if (change.kind === 'model') return change.data.parameters?.sha256 ?? null;
  return null;
}

/** The local key of a sample change's id "<projectId>/<contentId>". */
export function sampleKey(change) {
  const contentId = change.data?.contentId ?? change.id.slice(change.id.lastIndexOf('/') + 1);
  return [change.project, contentId];
}
