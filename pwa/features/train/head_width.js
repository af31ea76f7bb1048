// Narrow heads: the exporter also writes the head's training set cut to a few widths (manifest
// training.head.narrow). A step on a 100-class head costs ~10× one on an 8-class head, and with the class
// mask rows past a project's classes get no gradient, so the train worker trains the narrowest set that
// holds the project's classes and hands back parameters in the wide layout, exactly as every consumer
// (predictions, exports, resume, stored models) has always seen them.
import { numel } from '../artifacts.js';

/** The narrowest of the head set's narrow sets with room for `numClasses` classes, or null. */
export function narrowHeadSet(headSet, numClasses) {
  const fitting = (headSet.narrow?.sets ?? []).filter((s) => s.max_classes >= numClasses);
  return fitting.reduce((best, s) => (best && best.max_classes <= s.max_classes ? best : s), null);
}

/**
 * Copy each tensor of `from` (laid out as `fromLayout`) into `to` (as `toLayout`), matched by name: the
 * first rows that both shapes have (tensors may differ in their first dimension only).
 */
function copyRows(from, fromLayout, to, toLayout) {
  const source = new Map(fromLayout.map((p) => [p.name, p]));
  for (const p of toLayout) {
    const q = source.get(p.name);
    const rowSize = numel(p.shape.slice(1));
    if (!q || numel(q.shape.slice(1)) !== rowSize) throw new Error(`narrow head: no tensor ${p.name} of rows of ${rowSize} to match`);
    const values = Math.min(p.shape[0], q.shape[0]) * rowSize;
    to.set(from.subarray(q.offset, q.offset + values), p.offset);
  }
}

const count = (layout) => layout.reduce((n, p) => n + numel(p.shape), 0);

/** Wide-layout parameters cut to a narrow set's layout (its first rows). */
export function narrowParameters(wide, wideLayout, narrowLayout) {
  const out = new Float32Array(count(narrowLayout));
  copyRows(wide, wideLayout, out, narrowLayout);
  return out;
}

/**
 * A narrow run's parameters back in the wide layout: its rows first, the remaining rows those of `start`
 * (the wide parameters the run started from) shrunk by AdamW's decoupled weight decay once per optimizer
 * step, as the wide run leaves rows without gradient (their moments stay zero, so decay is their only change).
 */
export function widenParameters(narrow, narrowLayout, start, wideLayout, { steps, learningRate, weightDecay }) {
  const decay = Math.pow(1 - learningRate * weightDecay, steps);
  const out = new Float32Array(start.length);
  for (let i = 0; i < out.length; i++) out[i] = start[i] * decay;
  copyRows(narrow, narrowLayout, out, wideLayout);
  return out;
}
