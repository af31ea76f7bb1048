// Which artifacts a model needs: an artifact folder's identity (its manifest without export time and
// checks: every file's sha256, preprocessing, layouts), recorded with each model, so that a model is
// never used with other artifacts (after an app update brings a new backbone) and says so instead.
import { sha256Hex } from '../dataset/images.js';
import { backboneId } from '../artifacts.js';

const artifactSets = new Map();

/** Parts of a manifest that say when and where it was made, not what the files compute. */
const VOLATILE_MANIFEST_KEYS = new Set(['created', 'checks', 'versions', 'backbone_choice', 'name']);

/**
 * The manifest parts that say what a model needs: without when and where it was made, and without the
 * head's narrow training sets and their files (head_width.js), which are cut from the wide head and train
 * the same model; an export that adds them leaves the models trained before usable.
 */
function identityOf(manifest) {
  const identity = Object.fromEntries(Object.entries(manifest).filter(([k]) => !VOLATILE_MANIFEST_KEYS.has(k)));
  const narrow = manifest.training?.head?.narrow;
  if (!narrow) return identity;
  const derived = new Set([narrow.initial_parameters.file,
    ...narrow.sets.flatMap((s) => [s.checkpoint, ...Object.values(s.models).map((m) => m.file)])]);
  const { narrow: _, ...head } = manifest.training.head;
  return {
    ...identity,
    training: { ...manifest.training, head },
    files: Object.fromEntries(Object.entries(manifest.files ?? {}).filter(([file]) => !derived.has(file))),
  };
}

/** JSON with object keys sorted at every level (the same value always gives the same text). */
const canonicalJson = (value) => JSON.stringify(value, (key, v) => (v && typeof v === 'object' && !Array.isArray(v)
  ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v));

/**
 * The artifact folder's manifest and its identity `id`: the sha256 of the manifest without its export
 * time and checks, so it names exactly the files (each by sha256), preprocessing and layouts a model
 * trained with them needs; a re-export of identical files keeps the id. Fetched once per page.
 * @returns {Promise<{manifest: object, id: string}>}
 */
export async function loadArtifactSet(artifacts) {
  if (!artifactSets.has(artifacts)) {
    artifactSets.set(artifacts, (async () => {
      const response = await fetch(new URL('manifest.json', artifacts));
      if (!response.ok) throw new Error(`${new URL(artifacts).pathname}manifest.json: HTTP ${response.status}; export artifacts first`);
      const manifest = await response.json();
      return { manifest, id: await sha256Hex(new TextEncoder().encode(canonicalJson(identityOf(manifest)))) };
    })());
  }
  try {
    return await artifactSets.get(artifacts);
  } catch (error) {
    artifactSets.delete(artifacts);
    throw error;
  }
}

/** The artifact folder's manifest.json (fetched once per page). */
export const loadManifest = async (artifacts) => (await loadArtifactSet(artifacts)).manifest;

/** What a model records of the artifacts it was trained with. */
export const artifactsRecord = ({ manifest, id }) => ({
  id, architecture: manifest.architecture, weights: manifest.weights?.kind ?? null, inputSize: manifest.input?.size ?? null,
  featureSize: manifest.feature_size,
});

const WEIGHTS = {
  imagenet: 'ImageNet weights', none: 'random weights', file: 'weights from a file', pretrained: 'pretrained weights',
  'fine-tuned': 'fine-tuned weights',
};
const describeArtifacts = (a) => [a.architecture, WEIGHTS[a.weights] ?? a.weights, a.inputSize?.join('×').concat(' px')]
  .filter(Boolean).join(', ');

/** Why `model` cannot be used with the artifact set `set`, or null when it can. */
export function artifactsMismatch(model, set) {
  const same = model.artifacts
    ? model.artifacts.id === set.id
    : model.backboneId === backboneId(set.manifest); // models stored before artifact sets were recorded
  if (same) return null;
  const was = model.artifacts ? describeArtifacts(model.artifacts) : 'an earlier backbone';
  return `This model was trained with other model files (${was}) than this version of Tejas has `
    + `(${describeArtifacts(artifactsRecord(set))}), so it cannot predict or be exported. `
    + 'Your images are all still here: retrain with the new backbone.';
}

/** An error refusing a model trained with other artifacts; `name` lets callers offer a retrain. */
export class ArtifactsChangedError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ArtifactsChangedError';
  }
}
