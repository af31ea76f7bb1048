// What every worker needs of an artifact folder: its base URL, its manifest, the ORT thread count.

/** The artifact folder as a URL ending in "/", resolved against the caller's location. */
const artifactsBase = (artifacts) =>
  new URL(artifacts.endsWith('/') ? artifacts : `${artifacts}/`, self.location.href);

/** The folder's manifest.json as {base, bytes, manifest}, or an error naming the file and the fix. */
export async function fetchManifest(artifacts) {
  const base = artifactsBase(artifacts);
  const response = await fetch(new URL('manifest.json', base));
  if (!response.ok) throw new Error(`${base.pathname}manifest.json: HTTP ${response.status}; export artifacts first`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  return { base, bytes, manifest: JSON.parse(new TextDecoder().decode(bytes)) };
}

/** WASM threads to use: ort-web's default is one on a 2-core machine; threads need cross-origin isolation. */
export const wasmThreads = (threads) =>
  (self.crossOriginIsolated ? (threads ?? Math.min(4, navigator.hardwareConcurrency || 1)) : 1);

/** The file that turns an input into features: backbone.onnx (images) or the text encoder (text). */
export const backboneFile = (manifest) => (manifest.modality === 'text' ? manifest.text.encoder : 'backbone.onnx');

/** Identifies the backbone's weights: embeddings from another backbone are never mixed in. */
export const backboneId = (manifest) => manifest.files[backboneFile(manifest)].sha256.slice(0, 16);

/** Number of values in a tensor of `shape`. */
export const numel = (shape) => shape.reduce((a, b) => a * b, 1);

/** Values per item of a manifest model's first output ([batch, ...dims]). */
export const outputSize = (model) => numel(model.outputs[0].shape.slice(1));

/**
 * The tensors `names` of a model's contiguous parameter buffer, as [name, Float32Array view, shape],
 * located by its layout ([{name, shape, offset}] from the manifest); an error names a missing one.
 */
export function parameterViews(parameters, layout, names) {
  const byName = new Map(layout.map((p) => [p.name, p]));
  return names.map((name) => {
    const p = byName.get(name);
    if (!p) throw new Error(`the model has no tensor ${name}; it was trained with other artifacts`);
    return [name, parameters.subarray(p.offset, p.offset + numel(p.shape)), p.shape];
  });
}

/** The head's weight and bias entries in a model's parameter layout (head and last-block modes). */
export function headOf(layout) {
  const weight = layout.find((p) => /(^|\.)fc\.weight$/.test(p.name));
  const bias = layout.find((p) => /(^|\.)fc\.bias$/.test(p.name));
  if (!weight || !bias) throw new Error('the model has no head tensors (fc.weight, fc.bias)');
  return { weight, bias };
}
