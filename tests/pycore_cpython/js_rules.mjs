// The browser's implementations of the shared rules, answering one JSON request per stdin line:
// {"kind": "name"|"blankName"|"blankText"|"textProblem"|"split"|"metrics"|"imageSize"|"resize", "args": [...]} -> {"value": ...} or {"error": message}.
import { load, serve } from './js_serve.mjs';

const { isBlankName, validateClassName } = await load('features/dataset/names.js');
const { BLANK_TEXT, isBlankText, textProblem } = await load('features/text/rules.js');
const { stratifiedSplit } = await load('features/train/split.js');
const { classificationReport } = await load('features/train/metrics.js');
const { imageSizeProblem, resizeProblem } = await load('features/rules.js');

// The JS report names two keys the JS way; the Python core's names are what the test compares.
const PYTHON_KEYS = { perClass: 'per_class', confusionMatrix: 'confusion_matrix' };
const pythonKeys = (report) => Object.fromEntries(Object.entries(report).map(([k, v]) => [PYTHON_KEYS[k] ?? k, v]));

const KINDS = {
  name: (name) => validateClassName(name),
  blankName: (name) => isBlankName(name),
  blankText: (text) => (isBlankText(text) ? BLANK_TEXT : null),
  textProblem: (text) => textProblem(text),
  split: (...args) => stratifiedSplit(...args),
  metrics: (...args) => pythonKeys(classificationReport(...args)),
  imageSize: (...args) => imageSizeProblem(...args),
  resize: (...args) => resizeProblem(...args),
};

await serve(KINDS);
