// What a batch prediction reads: image Files (picked, or from a folder), or a zip read entry by entry
// in the Python worker under the core's archive rules. Either way only the batch at hand is read.
import { MESSAGE } from '../../protocol.js';

/** Whether `source` is a zip (one Blob/File) rather than a list of image Files. */
export const isZip = (source) => source instanceof Blob;

/**
 * An open source: {kind, total, names: string[], read(indices, signal) → Promise<[{blob} | {error}]>,
 * close()}. `callPython(type, payload, {signal})` reaches the Python worker (for zips).
 */
export async function openImages(source, callPython, { signal } = {}) {
  if (isZip(source)) {
    const { handle, paths } = await callPython(MESSAGE.IMAGE_ZIP_OPEN, { file: source }, { signal });
    return {
      kind: 'zip',
      total: paths.length,
      names: paths,
      read: (indices, readSignal) => callPython(MESSAGE.IMAGE_ZIP_READ, { handle, indices }, { signal: readSignal }),
      close: () => callPython(MESSAGE.IMAGE_ZIP_CLOSE, { handle }).catch(() => null),
    };
  }
  const files = [...(source ?? [])];
  const bad = files.findIndex((f) => !(f instanceof Blob));
  if (bad >= 0) throw new TypeError(`source[${bad}] is not a File or Blob; pass image Files or one zip File`);
  return {
    kind: 'files',
    total: files.length,
    names: files.map((f, i) => f.webkitRelativePath || f.name || `image ${i + 1}`),
    read: async (indices) => indices.map((i) => ({ blob: files[i] })),
    close: async () => null,
  };
}

/** The base name of a path ("photos/cat 1.png" → "cat 1.png"). */
export const baseName = (path) => String(path).split('/').pop() || String(path);

/**
 * The image Files of `rows` (from predictMany) as stored in `source`, `chunk` at a time through
 * `onChunk(files, rows)` (a zip is re-read entry by entry; nothing else is kept). A row whose entry
 * cannot be read gets a File of null.
 */
export async function forEachImage(source, rows, callPython, onChunk, { chunk = 16 } = {}) {
  const images = await openImages(source, callPython);
  try {
    for (let start = 0; start < rows.length; start += chunk) {
      const part = rows.slice(start, start + chunk);
      const read = await images.read(part.map((r) => r.index));
      const files = read.map((r, i) => (r.blob
        ? new File([r.blob], baseName(part[i].file), { type: r.blob.type })
        : null));
      await onChunk(files, part);
    }
  } finally {
    await images.close();
  }
}
