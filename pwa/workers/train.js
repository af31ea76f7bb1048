// Train worker: the classification head, or the last block + head, with onnxruntime-web 1.19.2 training
// on cached embeddings (or cached inputs of the last block). Deterministic for a seed; progress after any
// step ending 250 ms or more after the last report, and after each epoch; cancellable between steps.
import { fetchManifest, numel, wasmThreads } from '../features/artifacts.js';
import { seededRandom } from '../features/random.js';
import { narrowHeadSet, narrowParameters, widenParameters } from '../features/train/head_width.js';
import { MESSAGE, serveRequests } from '../protocol.js';

const VENDOR = new URL('../vendor/ort-training/', import.meta.url);
const PROGRESS_EVERY_MS = 250;
const YIELD_EVERY_MS = 50;

// The wasm backend resolves its promises at once, so a training loop never returns to the event
// loop by itself and a cancel message would wait for the end; yield now and then.
const yieldToEvents = () => new Promise((resolve) => setTimeout(resolve, 0));
const cancelled = new Set();
const wideStarts = new Map();
let runtime = null;

async function loadRuntime(threads) {
  runtime ??= await import(new URL('ort.training.wasm.min.mjs', VENDOR).href);
  runtime.env.wasm.wasmPaths = VENDOR.href;
  runtime.env.wasm.numThreads = wasmThreads(threads);
  return runtime;
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${new URL(url).pathname}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/** The wide head's initial parameters a narrow run widens into (fetched once per file version and worker). */
function wideStart(base, manifest, narrow) {
  const { file } = narrow.initial_parameters;
  const url = new URL(file, base).href;
  const key = `${url}#${manifest.files?.[file]?.sha256}`;
  if (!wideStarts.has(key)) {
    wideStarts.set(key, fetchBytes(url).then((bytes) => new Float32Array(bytes.buffer)).catch((error) => {
      wideStarts.delete(key);
      throw error;
    }));
  }
  return wideStarts.get(key);
}

/** A training session whose optimizer runs at `learningRate` and `weightDecay` (patched in: 1.19.2 has no setters). */
async function createSession(ort, base, set, learningRate, weightDecay) {
  const url = (file) => new URL(file, base).href;
  const optimizer = await fetchBytes(url(set.models.optimizer_model.file));
  const scale = set.optimizer.learning_rate_scale;
  const view = new DataView(optimizer.buffer);
  view.setFloat32(scale.offset, learningRate / scale.runtime_default_learning_rate, true);
  if (weightDecay != null && weightDecay !== set.optimizer.weight_decay) {
    const decay = set.optimizer.weight_decay_value;
    if (!decay) throw new Error('these artifacts cannot change the weight decay; re-export them with `tejas export --force`');
    view.setFloat32(decay.offset, weightDecay, true);
  }
  return ort.TrainingSession.create({
    checkpointState: url(set.checkpoint),
    trainModel: url(set.models.training_model.file),
    evalModel: url(set.models.eval_model.file),
    optimizerModel: optimizer,
  });
}

function shuffled(n, next) {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

function batchFeeds(ort, set, features, labels, rows, featureSize, mask) {
  const dims = set.input.shape.slice(1);
  const x = new Float32Array(rows.length * featureSize);
  const y = new BigInt64Array(rows.length);
  rows.forEach((row, i) => {
    x.set(features.subarray(row * featureSize, (row + 1) * featureSize), i * featureSize);
    y[i] = BigInt(labels[row]);
  });
  return {
    [set.input.name]: new ort.Tensor('float32', x, [rows.length, ...dims]),
    class_mask: mask,
    labels: new ort.Tensor('int64', y, [rows.length]),
  };
}

/** Correct predictions among `rows` from logits [rows, maxClasses]; the mask keeps argmax in range. */
function countCorrect(logits, labels, rows, maxClasses) {
  let correct = 0;
  rows.forEach((row, i) => {
    let best = 0;
    for (let c = 1; c < maxClasses; c++) if (logits[i * maxClasses + c] > logits[i * maxClasses + best]) best = c;
    if (best === labels[row]) correct++;
  });
  return correct;
}

async function evaluate(session, ort, set, data, featureSize, mask, maxClasses, batchSize) {
  let loss = 0;
  let correct = 0;
  const n = data.labels.length;
  for (let start = 0; start < n; start += batchSize) {
    const rows = Array.from({ length: Math.min(batchSize, n - start) }, (_, i) => start + i);
    // runEvalStep keys extra outputs "undefined": read them by position (loss, logits).
    const [lossOut, logitsOut] = Object.values(await session.runEvalStep(batchFeeds(ort, set, data.features, data.labels, rows, featureSize, mask)));
    loss += lossOut.data[0] * rows.length;
    correct += countCorrect(logitsOut.data, data.labels, rows, maxClasses);
  }
  return { loss: loss / n, accuracy: correct / n };
}

serveRequests(self, {
  cancel(_payload, _progress, id) {
    cancelled.add(id);
  },

  /**
   * {artifacts, mode: 'head'|'last_block', train: {features, labels}, validation?: {features, labels},
   *  numClasses, epochs, batchSize, learningRate, weightDecay, seed, threads, initialParameters?, narrowHead?}
   *   → {parameters, layout, history, seconds, steps, trainedWidth}. In last-block mode `features` are the last
   *   block's inputs (the trunk's output), one row of manifest.training.last_block.input.shape per sample.
   *   In head mode the narrowest head set holding numClasses trains when the artifacts have one (unless
   *   narrowHead is false): same result, a fraction of the cost; parameters and layout are the wide set's
   *   either way (trainedWidth says which width trained).
   */
  async [MESSAGE.TRAIN_HEAD](options, progress, id) {
    const { artifacts, train, validation, numClasses, epochs = 20, batchSize = 16, learningRate = 3e-3, seed = 0 } = options;
    const mode = options.mode ?? 'head';
    const ort = await loadRuntime(options.threads);
    const { base, manifest } = await fetchManifest(artifacts);
    const wide = manifest.training[mode];
    if (!wide) throw new Error(`these artifacts cannot train in ${mode} mode; re-export with --train last-block`);
    if (!(numClasses >= 2 && numClasses <= manifest.max_classes)) throw new RangeError(`a project needs 2 to ${manifest.max_classes} classes, not ${numClasses}`);
    const narrow = mode === 'head' && options.narrowHead !== false ? narrowHeadSet(wide, numClasses) : null;
    const set = narrow ?? wide;
    const maxClasses = narrow ? narrow.max_classes : manifest.max_classes;
    const featureSize = numel(set.input.shape.slice(1));
    // A narrow run widens into the parameters it resumed from, or the wide head's initial ones: fetched
    // while the session is made (awaited after training; handled now, so a failed run leaves no rejection).
    const fetchedStart = narrow && !options.initialParameters ? wideStart(base, manifest, wide.narrow) : null;
    fetchedStart?.catch(() => {});
    const session = await createSession(ort, base, set, learningRate, options.weightDecay);
    try {
      let start = options.initialParameters;
      if (start && narrow) start = narrowParameters(start, wide.parameters, narrow.parameters);
      if (start) await session.loadParametersBuffer(new Uint8Array(start.buffer, start.byteOffset, start.byteLength).slice(), true);
      const maskData = new Float32Array(maxClasses).fill(1, 0, numClasses);
      const mask = new ort.Tensor('float32', maskData, [maxClasses]);
      const n = train.labels.length;
      const stepsPerEpoch = Math.ceil(n / batchSize);
      const totalSteps = epochs * stepsPerEpoch;
      const next = seededRandom(seed);
      const history = [];
      const started = performance.now();
      let lastReport = started;
      let lastYield = started;
      let step = 0;
      for (let epoch = 1; epoch <= epochs; epoch++) {
        const order = shuffled(n, next);
        let lossSum = 0;
        let correct = 0;
        for (let start = 0; start < n; start += batchSize) {
          if (performance.now() - lastYield >= YIELD_EVERY_MS) {
            await yieldToEvents();
            lastYield = performance.now();
          }
          if (cancelled.has(id)) throw new DOMException('Training cancelled', 'AbortError');
          const rows = order.slice(start, start + batchSize);
          const result = await session.runTrainStep(batchFeeds(ort, set, train.features, train.labels, rows, featureSize, mask));
          const [lossOut, logitsOut] = [result[session.trainingOutputNames[0]], result[session.trainingOutputNames[1]]];
          lossSum += lossOut.data[0] * rows.length;
          correct += countCorrect(logitsOut.data, train.labels, rows, maxClasses);
          await session.runOptimizerStep();
          await session.lazyResetGrad();
          step++;
          const now = performance.now();
          if (now - lastReport >= PROGRESS_EVERY_MS) {
            lastReport = now;
            const eta = ((now - started) / step) * (totalSteps - step) / 1000;
            progress({ step, totalSteps, epoch, loss: lossOut.data[0], etaSeconds: eta });
          }
        }
        const entry = { epoch, loss: lossSum / n, trainAccuracy: correct / n };
        if (validation?.labels.length) {
          const v = await evaluate(session, ort, set, validation, featureSize, mask, maxClasses, 64);
          entry.validationLoss = v.loss;
          entry.validationAccuracy = v.accuracy;
        }
        history.push(entry);
        const now = performance.now();
        lastReport = now;
        progress({ step, totalSteps, epoch, ...entry, epochDone: true, etaSeconds: ((now - started) / step) * (totalSteps - step) / 1000 });
      }
      let parameters = (await session.getContiguousParameters(true)).data;
      if (narrow) {
        const from = options.initialParameters ?? await fetchedStart;
        parameters = widenParameters(parameters, narrow.parameters, from, wide.parameters,
          { steps: step, learningRate, weightDecay: options.weightDecay ?? narrow.optimizer.weight_decay });
      }
      return {
        parameters, layout: wide.parameters, mode, history, steps: step, seconds: (performance.now() - started) / 1000,
        trainedWidth: maxClasses,
      };
    } finally {
      cancelled.delete(id);
      await session.release();
    }
  },
});
