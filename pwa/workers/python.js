// Python worker: Pyodide with the stdlib core (vendor/tejas-core.zip), loaded on first use, for what
// the core does the same way in the browser and on the server — model files and dataset zips.
import { backboneId, fetchManifest, headOf, parameterViews } from '../features/artifacts.js';
import { MESSAGE, serveRequests } from '../protocol.js';

const VENDOR = new URL('../vendor/', import.meta.url);
let ready = null;
const fetchedArtifacts = new Map();

async function start() {
  const { loadPyodide } = await import(new URL('pyodide/pyodide.mjs', VENDOR).href);
  const pyodide = await loadPyodide({ indexURL: new URL('pyodide/', VENDOR).href });
  const response = await fetch(new URL('tejas-core.zip', VENDOR));
  if (!response.ok) throw new Error(`vendor/tejas-core.zip: HTTP ${response.status}; run tools/vendor.py`);
  const sitePackages = pyodide.runPython('import site; site.getsitepackages()[0]');
  pyodide.unpackArchive(new Uint8Array(await response.arrayBuffer()), 'zip', { extractDir: sitePackages });
  // Everything the worker does in Python is a function of tejas.bridge (tested in CPython too).
  return { pyodide, bridge: pyodide.pyimport('tejas.bridge') };
}

const python = () => (ready ??= start().catch((error) => { ready = null; throw error; }));

/** The Python exception's own message ("x.zip: not a zip archive"), not its traceback. */
function pythonMessage(error) {
  if (error?.type === undefined) return error;
  const last = String(error.message).trim().split('\n').at(-1);
  return new Error(last.replace(/^[\w.]+: /, ''));
}

/** bridge[name](...args) with JS values converted to Python ones; a Python error rethrown with its message. */
async function call(name, ...args) {
  const { pyodide, bridge } = await python();
  const pyArgs = args.map((a) => (a !== null && typeof a === 'object' ? pyodide.toPy(a) : a));
  try {
    return bridge[name](...pyArgs);
  } catch (error) {
    throw pythonMessage(error);
  } finally {
    pyArgs.forEach((a) => a?.destroy?.());
  }
}

/** The file `path` in Pyodide's file system, then removed. */
async function takeFile(path) {
  const { pyodide } = await python();
  const bytes = pyodide.FS.readFile(path);
  pyodide.FS.unlink(path);
  return bytes;
}

/** Copy the artifact files the writers read into Pyodide's file system (once per artifact folder). */
async function artifactsDir(pyodide, artifacts, files) {
  const { base, bytes: manifestBytes, manifest } = await fetchManifest(artifacts);
  const dir = `/artifacts/${backboneId(manifest)}`;
  const have = fetchedArtifacts.get(dir) ?? new Set();
  pyodide.FS.mkdirTree(dir);
  pyodide.FS.writeFile(`${dir}/manifest.json`, manifestBytes);
  for (const file of files) {
    if (have.has(file)) continue;
    const response = await fetch(new URL(file, base));
    if (!response.ok) throw new Error(`${base.pathname}${file}: HTTP ${response.status}; re-export the artifacts`);
    pyodide.FS.writeFile(`${dir}/${file}`, new Uint8Array(await response.arrayBuffer()));
    have.add(file);
  }
  fetchedArtifacts.set(dir, have);
  return { dir, manifest };
}

async function writeModel(kind, { artifacts, parameters, layout, numClasses, classNames, mode = 'head' }) {
  const { pyodide } = await python();
  const lastBlock = mode === 'last_block';
  const { manifest: described } = await fetchManifest(artifacts);
  const text = described.modality === 'text';
  if (text && kind === 'pt') {
    throw new Error('A text model has no PyTorch export in the app: download its ONNX model instead, or train it on a server, whose job writes a .pt.');
  }
  // The text encoder is the one file the app loads too (manifest.text.encoder); tokenizer.json goes into the metadata.
  const files = text ? [described.text.encoder, described.text.tokenizer]
    : kind === 'pt' ? ['backbone_state.safetensors'] : lastBlock ? ['backbone_trunk.onnx', 'last_block.onnx'] : ['backbone.onnx'];
  const { dir, manifest } = await artifactsDir(pyodide, artifacts, files);
  const f = manifest.feature_size;
  const { weight, bias } = headOf(layout);
  const dest = `/tmp/model.${kind}`;
  const asBytes = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const weightRows = parameters.subarray(weight.offset, weight.offset + numClasses * f);
  const biasRows = parameters.subarray(bias.offset, bias.offset + numClasses);
  const blockNames = lastBlock ? layout.filter((p) => p !== weight && p !== bias).map((p) => p.name) : [];
  const block = Object.fromEntries(parameterViews(parameters, layout, blockNames).map(([name, values]) => [name, asBytes(values.slice())]));
  const metadata = await call('write_model', kind, dir, asBytes(weightRows.slice()), asBytes(biasRows.slice()), classNames, dest, block);
  metadata?.destroy?.();
  return takeFile(dest);
}

// Zips open while a batch prediction or a dataset import reads them: handle → {zip (a PyProxy of
// tejas.image_zip.ImageZip or tejas.bridge.DatasetZip), mount}. The zip File is mounted with WORKERFS, which reads the slices
// Python asks for straight from the File: the archive is never copied into memory.
const imageZips = new Map();
let zipCount = 0;

/** Mount a File read-only (WORKERFS: no copy of it in memory); `open(path)` → a PyProxy kept under a new handle. */
async function openZip(file, open, fallbackName) {
  const { pyodide } = await python();
  const handle = ++zipCount;
  const mount = `/image-zips/${handle}`;
  const name = (file.name || fallbackName).replace(/[/\\\0]/g, '_');
  pyodide.FS.mkdirTree(mount);
  pyodide.FS.mount(pyodide.FS.filesystems.WORKERFS, { blobs: [{ name, data: file }] }, mount);
  try {
    const zip = await open(`${mount}/${name}`);
    imageZips.set(handle, { zip, mount });
    return { handle, zip };
  } catch (error) {
    unmount(pyodide, mount);
    throw error;
  }
}

async function openImageZip(file) {
  const { handle, zip } = await openZip(file, (path) => call('open_image_zip', path), 'images.zip');
  const paths = zip.paths;
  try {
    return { handle, name: zip.name, paths: paths.toJs() };
  } finally {
    paths.destroy();
  }
}

async function closeZip({ handle }) {
  const open = imageZips.get(handle);
  if (!open) return null;
  imageZips.delete(handle);
  const { pyodide } = await python();
  try {
    open.zip.close();
  } finally {
    open.zip.destroy();
    unmount(pyodide, open.mount);
  }
  return null;
}

function unmount(pyodide, mount) {
  pyodide.FS.unmount(mount);
  pyodide.FS.rmdir(mount);
}

serveRequests(self, {
  [MESSAGE.IMAGE_ZIP_OPEN]: ({ file }) => openImageZip(file),

  /** The entries asked for, each as {blob} (typed by its bytes) or {error} (why it is no usable image). */
  async [MESSAGE.IMAGE_ZIP_READ]({ handle, indices }) {
    const open = imageZips.get(handle);
    if (!open) throw new Error('This zip is closed; choose it again.');
    const { pyodide } = await python();
    const pyIndices = pyodide.toPy(indices);
    let read;
    try {
      read = open.zip.read_many(pyIndices);
    } catch (error) {
      throw pythonMessage(error);
    } finally {
      pyIndices.destroy();
    }
    try {
      return read.toJs().map(([bytes, text]) => (bytes ? { blob: new Blob([bytes], { type: text }) } : { error: text }));
    } finally {
      read.destroy();
    }
  },

  /** A dataset zip checked whole first (nothing kept), then read a batch at a time: memory holds one batch. */
  async [MESSAGE.DATASET_ZIP_OPEN]({ file }) {
    const { handle, zip } = await openZip(file, (path) => call('open_dataset_zip', path), 'dataset.zip');
    return { handle, ...JSON.parse(zip.description) };
  },

  async [MESSAGE.DATASET_ZIP_READ]({ handle, count, maxBytes }) {
    const open = imageZips.get(handle);
    if (!open) throw new Error('This zip is closed; choose it again.');
    let read;
    try {
      read = open.zip.read_batch(count, maxBytes ?? undefined);  // undefined reaches Python as None
    } catch (error) {
      throw pythonMessage(error);
    }
    try {
      const [description, datas] = read.toJs();
      return JSON.parse(description).map((s, i) => ({ ...s, bytes: datas[i] }));
    } finally {
      read.destroy();
    }
  },

  [MESSAGE.DATASET_ZIP_CLOSE]: (payload) => closeZip(payload),

  [MESSAGE.IMAGE_ZIP_CLOSE]: (payload) => closeZip(payload),

  /** [{name, bytes}] → zip bytes (stored, fixed timestamps: the same entries give the same file). */
  async [MESSAGE.WRITE_ZIP]({ entries }) {
    await call('write_zip', entries, '/tmp/out.zip');
    return takeFile('/tmp/out.zip');
  },

  /** zip bytes → {name: bytes} for the entries in `names`; a clear error for anything else. */
  async [MESSAGE.READ_ZIP]({ bytes, label, names }) {
    const { pyodide } = await python();
    pyodide.FS.writeFile('/tmp/in.zip', bytes);
    try {
      const entries = await call('read_zip_entries', '/tmp/in.zip', label, names);
      try {
        return Object.fromEntries(entries.toJs());
      } finally {
        entries.destroy();
      }
    } finally {
      pyodide.FS.unlink('/tmp/in.zip');
    }
  },

  [MESSAGE.EXPORT_ONNX]: (payload) => writeModel('onnx', payload),
  [MESSAGE.EXPORT_PT]: (payload) => writeModel('pt', payload),

  /** {classes: string[], samples: [{label, name, bytes, metadata}]} → zip bytes (ImageFolder + tejas.json). */
  async [MESSAGE.EXPORT_DATASET]({ classes, samples }) {
    // metadata as JSON text: exactly what was stored, whatever toPy would make of it
    const plain = samples.map((s) => ({ label: s.label, name: s.name, bytes: s.bytes, metadata: JSON.stringify(s.metadata ?? {}) }));
    const written = await call('export_dataset', classes, plain, '/tmp/dataset.zip');
    written?.destroy?.();
    return takeFile('/tmp/dataset.zip');
  },

  /** {bytes, name, layout ('csv' | 'lines'), maxClasses?} → {rows: [{text, label, row}], skipped: [{row, reason}],
   * notes, encoding, delimiter, header, classes}; rejects with the core's sentence for a file refused whole. */
  async [MESSAGE.READ_TEXT_CSV]({ bytes, name, layout = 'csv', maxClasses }) {
    // undefined reaches Python as None (null would be a JsNull)
    return JSON.parse(await call('read_text_csv', bytes, name, layout, maxClasses ?? undefined));
  },

  /** {rows: [{text, label}]} → Uint8Array: CSV with header text,label, formula cells neutralised. */
  async [MESSAGE.WRITE_TEXT_CSV]({ rows }) {
    const written = await call('write_text_csv', JSON.stringify(rows.map(({ text, label }) => ({ text, label }))));
    try {
      return written.toJs();
    } finally {
      written.destroy();
    }
  },

});
