// Evaluation metrics with the Python core's definitions (tejas.metrics, itself equal to scikit-learn):
// the same refusals (worded by py/tejas/schemas/rules.json) and the same floating-point operations in
// the same order, so both give the same numbers (a property test compares them).
import { RULES, formatNumber, message } from '../rules.js';

const SAYS = RULES.metrics.messages;
const ratio = (a, b) => (b ? a / b : 0);

/** {accuracy, perClass, macro, weighted, confusionMatrix, cells: {"t,p": ids}, count} */
export function classificationReport(yTrue, yPred, classNames, sampleIds = null) {
  const n = classNames.length;
  if (yTrue.length !== yPred.length || (sampleIds != null && sampleIds.length !== yTrue.length)) throw new Error(SAYS.length);
  for (const v of [...yTrue, ...yPred]) {
    if (!(Number.isInteger(v) && v >= 0 && v < n)) throw new Error(message(SAYS.index, { index: formatNumber(v), last: n - 1 }));
  }
  const matrix = Array.from({ length: n }, () => new Array(n).fill(0));
  const cells = {};
  yTrue.forEach((t, i) => {
    matrix[t][yPred[i]]++;
    if (sampleIds != null) (cells[`${t},${yPred[i]}`] ??= []).push(sampleIds[i]);
  });
  const perClass = classNames.map((name, c) => {
    const tp = matrix[c][c];
    const predicted = matrix.reduce((sum, row) => sum + row[c], 0);
    const support = matrix[c].reduce((a, b) => a + b, 0);
    const precision = ratio(tp, predicted);
    const recall = ratio(tp, support);
    return { class: name, precision, recall, f1: ratio(2 * precision * recall, precision + recall), support };
  });
  const total = yTrue.length;
  const average = (key, weighted) =>
    weighted ? ratio(perClass.reduce((s, r) => s + r[key] * r.support, 0), total) : ratio(perClass.reduce((s, r) => s + r[key], 0), n);
  const keys = ['precision', 'recall', 'f1'];
  return {
    accuracy: ratio(matrix.reduce((s, row, c) => s + row[c], 0), total),
    perClass,
    macro: Object.fromEntries(keys.map((k) => [k, average(k, false)])),
    weighted: Object.fromEntries(keys.map((k) => [k, average(k, true)])),
    confusionMatrix: matrix,
    cells,
    count: total,
  };
}
