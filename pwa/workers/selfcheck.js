// Self-check worker: loads the exported artifacts in both onnxruntime-web builds the app uses —
// the current one for inference (backbone) and 1.19.2 for training (head) — and trains a few steps.
import { fetchManifest, parameterViews, wasmThreads } from '../features/artifacts.js';
import { MESSAGE, serveRequests } from '../protocol.js';

const VENDOR = new URL('../vendor/', import.meta.url);

async function loadRuntime(folder, module) {
  const ort = await import(new URL(`${folder}/${module}`, VENDOR).href);
  ort.env.wasm.wasmPaths = new URL(`${folder}/`, VENDOR).href;
  ort.env.wasm.numThreads = wasmThreads();
  return ort;
}

async function runBackbone(manifest, base, progress) {
  progress({ stage: 'loading backbone (onnxruntime-web inference)' });
  const ort = await loadRuntime('ort', 'ort.wasm.min.mjs');
  const started = performance.now();
  const session = await ort.InferenceSession.create(new URL(manifest.models.backbone.file, base).href,
    { executionProviders: ['wasm'] });
  const [h, w] = manifest.input.size;
  const image = new ort.Tensor('float32', new Float32Array(2 * 3 * h * w), [2, 3, h, w]);
  const output = await session.run({ [manifest.input.name]: image });
  const features = output[session.outputNames[0]];
  await session.release();
  return { version: ort.env.versions?.web ?? 'unknown', dims: features.dims, ms: performance.now() - started };
}

/** A separable toy problem: class c has a bump on feature c. */
function toyBatch(ort, featureSize, maxClasses, classes, batch) {
  const features = new Float32Array(batch * featureSize);
  const labels = new BigInt64Array(batch);
  for (let i = 0; i < batch; i++) {
    const c = i % classes;
    labels[i] = BigInt(c);
    for (let j = 0; j < featureSize; j++) features[i * featureSize + j] = Math.sin(i * 31 + j) * 0.1;
    features[i * featureSize + c] += 3;
  }
  const mask = new Float32Array(maxClasses);
  mask.fill(1, 0, classes);
  return {
    features: new ort.Tensor('float32', features, [batch, featureSize]),
    class_mask: new ort.Tensor('float32', mask, [maxClasses]),
    labels: new ort.Tensor('int64', labels, [batch]),
  };
}

async function createTrainingSession(ort, set, base) {
  const url = (file) => new URL(file, base).href;
  return ort.TrainingSession.create({
    checkpointState: url(set.checkpoint),
    trainModel: url(set.models.training_model.file),
    evalModel: url(set.models.eval_model.file),
    optimizerModel: url(set.models.optimizer_model.file),
  });
}

async function trainSteps(session, feeds, steps) {
  const losses = [];
  for (let step = 0; step < steps; step++) {
    const result = await session.runTrainStep(feeds);
    losses.push(result[session.trainingOutputNames[0]].data[0]);
    await session.runOptimizerStep();
    await session.lazyResetGrad();
  }
  return losses;
}

/** Distinct synthetic images (0, 1, 2, …) → a batch for the inference models. */
function syntheticImages(ort, manifest, batch) {
  const [h, w] = manifest.input.size;
  const data = new Float32Array(batch * 3 * h * w);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.001 * (1 + Math.floor(i / (3 * h * w))));
  return new ort.Tensor('float32', data, [batch, 3, h, w]);
}

// onnxruntime-web 1.19.2 (training) must read every file: inference models, head, last block.
async function checkTrainingRuntime(manifest, base, progress) {
  progress({ stage: 'loading artifacts in onnxruntime-web training' });
  const ort = await loadRuntime('ort-training', 'ort.training.wasm.min.mjs');
  const inference = {};
  const batch = 3;
  const images = syntheticImages(ort, manifest, batch);
  let blockInput = null;
  for (const [name, model] of Object.entries(manifest.models)) {
    if (model.inputs[0].name !== manifest.input.name) continue;  // last_block: run below, with trained tensors
    const session = await ort.InferenceSession.create(new URL(model.file, base).href);
    const output = (await session.run({ [manifest.input.name]: images }))[session.outputNames[0]];
    inference[name] = output.dims;
    if (name === 'backbone_trunk') blockInput = output;
    await session.release();
  }

  progress({ stage: 'training the head' });
  const classes = 3;
  const head = await createTrainingSession(ort, manifest.training.head, base);
  const feeds = toyBatch(ort, manifest.feature_size, manifest.max_classes, classes, 12);
  const losses = await trainSteps(head, feeds, 30);
  // runEvalStep keys extra outputs "undefined": read them by position.
  const logits = Object.values(await head.runEvalStep(feeds))[1].data;
  let correct = 0;
  for (let i = 0; i < 12; i++) {
    const row = logits.subarray(i * manifest.max_classes, (i + 1) * manifest.max_classes);
    if (row.indexOf(Math.max(...row)) === i % classes) correct++;
  }
  const parameters = await head.getContiguousParameters(true);
  await head.release();
  const result = { inference, head: { losses, accuracy: correct / 12, parameterCount: parameters.dims[0] } };

  if (manifest.training.last_block && blockInput) {
    progress({ stage: 'training the last block' });
    const lastBlock = await createTrainingSession(ort, manifest.training.last_block, base);
    const mask = new Float32Array(manifest.max_classes).fill(1, 0, batch);
    const lastFeeds = {
      [manifest.training.last_block.input.name]: blockInput,
      class_mask: new ort.Tensor('float32', mask, [manifest.max_classes]),
      labels: new ort.Tensor('int64', BigInt64Array.from([0n, 1n, 2n]), [batch]),
    };
    const blockLosses = await trainSteps(lastBlock, lastFeeds, 5);
    const blockParameters = await lastBlock.getContiguousParameters(true);
    await lastBlock.release();
    result.lastBlock = { losses: blockLosses, parameterCount: blockParameters.dims[0] };
    const model = manifest.models.last_block;
    if (model) {
      // what predictions of a last-block model run: the block with the trained tensors as inputs
      const blockFeeds = { [model.inputs[0].name]: blockInput };
      const views = parameterViews(blockParameters.data, manifest.training.last_block.parameters, model.parameters);
      for (const [name, values, shape] of views) blockFeeds[name] = new ort.Tensor('float32', values, shape);
      const session = await ort.InferenceSession.create(new URL(model.file, base).href);
      inference.last_block = (await session.run(blockFeeds))[session.outputNames[0]].dims;
      await session.release();
    }
  }
  return result;
}

serveRequests(self, {
  async [MESSAGE.SELFCHECK]({ artifacts }, progress) {
    const { base, manifest } = await fetchManifest(artifacts);
    const backbone = await runBackbone(manifest, base, progress);
    const training = await checkTrainingRuntime(manifest, base, progress);
    return { crossOriginIsolated: self.crossOriginIsolated, backbone, training };
  },
});
