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
  pyodide.runPython('import tejas.dataset, tejas.onnx_writer, tejas.model_export, tejas.images');
  return pyodide;
}

const python = () => (ready ??= start().catch((error) => { ready = null; throw error; }));

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
  const pyodide = await python();
  const lastBlock = mode === 'last_block';
  const files = kind === 'pt' ? ['backbone_state.safetensors'] : lastBlock ? ['backbone_trunk.onnx', 'last_block.onnx'] : ['backbone.onnx'];
  const { dir, manifest } = await artifactsDir(pyodide, artifacts, files);
  const f = manifest.feature_size;
  const { weight, bias } = headOf(layout);
  const dest = `/tmp/model.${kind}`;
  const run = pyodide.runPython(`
from array import array
def floats(data):
    values = array("f")
    values.frombytes(data.to_py() if hasattr(data, "to_py") else data)
    return values
def run(dir, weight, bias, names, dest, kind, block):
    last_block = {name: floats(data) for name, data in block.to_py()} or None
    if kind == "onnx":
        from tejas.onnx_writer import write_classifier_onnx as write
    else:
        from tejas.model_export import write_classifier_pt as write
    write(dir, floats(weight), floats(bias), list(names.to_py()), dest, last_block)
run`);
  const asBytes = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const weightRows = parameters.subarray(weight.offset, weight.offset + numClasses * f);
  const biasRows = parameters.subarray(bias.offset, bias.offset + numClasses);
  const blockNames = lastBlock ? layout.filter((p) => p !== weight && p !== bias).map((p) => p.name) : [];
  const block = parameterViews(parameters, layout, blockNames).map(([name, values]) => [name, asBytes(values.slice())]);
  run(dir, asBytes(weightRows.slice()), asBytes(biasRows.slice()), classNames, dest, kind, block);
  run.destroy();
  const bytes = pyodide.FS.readFile(dest);
  pyodide.FS.unlink(dest);
  return bytes;
}

serveRequests(self, {
  /** [{name, bytes}] → zip bytes (stored, fixed timestamps: the same entries give the same file). */
  async [MESSAGE.WRITE_ZIP]({ entries }) {
    const pyodide = await python();
    const write = pyodide.runPython(`
import zipfile
def write(entries, dest):
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as archive:
        for entry in entries.to_py():
            info = zipfile.ZipInfo(entry["name"], date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            archive.writestr(info, bytes(entry["bytes"]))
write`);
    write(entries, '/tmp/out.zip');
    write.destroy();
    const bytes = pyodide.FS.readFile('/tmp/out.zip');
    pyodide.FS.unlink('/tmp/out.zip');
    return bytes;
  },

  /** zip bytes → {name: bytes} for the entries in `names`; a clear error for anything else. */
  async [MESSAGE.READ_ZIP]({ bytes, label, names }) {
    const pyodide = await python();
    pyodide.FS.writeFile('/tmp/in.zip', bytes);
    const read = pyodide.runPython(`
import zipfile
def read(label, names):
    try:
        archive = zipfile.ZipFile("/tmp/in.zip")
    except zipfile.BadZipFile:
        raise ValueError(f"{label}: not a Tejas project file (not a zip archive)") from None
    with archive:
        present = set(archive.namelist())
        wanted = [n for n in names.to_py() if n in present]
        return [[n, archive.read(n)] for n in wanted]
read`);
    try {
      const entries = read(label, names).toJs();
      return Object.fromEntries(entries);
    } catch (error) {
      throw new Error(String(error.message).trim().split('\n').at(-1).replace(/^ValueError: /, ''));
    } finally {
      read.destroy();
      pyodide.FS.unlink('/tmp/in.zip');
    }
  },

  [MESSAGE.EXPORT_ONNX]: (payload) => writeModel('onnx', payload),
  [MESSAGE.EXPORT_PT]: (payload) => writeModel('pt', payload),

  /** {classes: string[], samples: [{label, name, bytes, metadata}]} → zip bytes (ImageFolder + tejas.json). */
  async [MESSAGE.EXPORT_DATASET]({ classes, samples }) {
    const pyodide = await python();
    const write = pyodide.runPython(`
import hashlib, json
from tejas.dataset import Sample, write_archive
from tejas.images import sniff_image
def write(classes, samples, dest):
    items = []
    for s in samples.to_py():
        data = bytes(s["bytes"])
        info = sniff_image(data, 10**9)
        items.append(Sample(f'{s["label"]}/{s["name"]}', s["label"], data, info, hashlib.sha256(data).hexdigest(),
                            json.loads(s["metadata"])))
    write_archive(list(classes.to_py()), items, dest)
write`);
    write(classes, samples.map((s) => ({ ...s, metadata: JSON.stringify(s.metadata ?? {}) })), '/tmp/dataset.zip');
    write.destroy();
    const bytes = pyodide.FS.readFile('/tmp/dataset.zip');
    pyodide.FS.unlink('/tmp/dataset.zip');
    return bytes;
  },

  /** zip bytes → {classes, samples: [{label, name, bytes, metadata}], skipped: [{path, reason}], warnings}. */
  async [MESSAGE.IMPORT_DATASET]({ bytes, name }) {
    const pyodide = await python();
    const path = `/tmp/${(name || 'dataset.zip').replace(/[^\w.-]/g, '_')}`;
    pyodide.FS.writeFile(path, bytes);
    const read = pyodide.runPython(`
import json
from tejas.dataset import ArchiveError, read_archive
def read(path):
    try:
        d = read_archive(path)
    except ArchiveError as error:
        return json.dumps({"error": str(error)}), []
    meta = {"classes": d.classes, "warnings": d.warnings,
            "skipped": [{"path": s.path, "reason": s.reason} for s in d.skipped],
            "samples": [{"label": s.label, "name": s.path.split("/", 1)[1], "metadata": s.metadata} for s in d.samples]}
    return json.dumps(meta), [s.data for s in d.samples]
read`);
    const [meta, datas] = read(path).toJs();
    read.destroy();
    pyodide.FS.unlink(path);
    const result = JSON.parse(meta);
    if (result.error) throw new Error(result.error);
    result.samples.forEach((s, i) => { s.bytes = datas[i].toJs ? datas[i].toJs() : datas[i]; });
    return result;
  },
});
