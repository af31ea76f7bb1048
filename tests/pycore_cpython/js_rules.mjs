// The browser's implementations of the shared rules, answering one JSON request per stdin line:
// {"kind": "name"|"blankName"|"blankText"|"textProblem"|"split"|"metrics"|"imageSize"|"resize", "args": [...]} -> {"value": ...} or {"error": message}.
// Non-finite numbers travel as {"$float": "NaN"|"Infinity"|"-Infinity"} (JSON has none).
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

const root = process.argv[2];
const load = (file) => import(pathToFileURL(path.join(root, 'pwa', file)).href);
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

const revive = (key, value) => (value && typeof value === 'object' && '$float' in value ? Number(value.$float) : value);

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  const { kind, args } = JSON.parse(line, revive);
  let reply;
  try {
    reply = { value: (await KINDS[kind](...args)) ?? null };
  } catch (error) {
    reply = { error: String(error?.message ?? error), name: error?.name };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
