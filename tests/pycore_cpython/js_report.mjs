// The app's prediction report writer (features/predict/report.js) and the spreadsheet guard
// (features/rules.js), answering one JSON request per stdin line:
// {"kind": "csv"|"json"|"probability"|"guard"|"isGuarded", "args": [...]} -> {"value": ...} or {"error": message}.
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

const root = process.argv[2];
const load = (file) => import(pathToFileURL(path.join(root, 'pwa', file)).href);
const { predictionsCsv, predictionsJson, probabilityText } = await load('features/predict/report.js');
const { guardCell, isGuarded } = await load('features/rules.js');

const KINDS = {
  csv: (report) => predictionsCsv(report),
  json: (report) => predictionsJson(report),
  probability: (p) => probabilityText(p),
  guard: (value) => guardCell(value),
  isGuarded: (cell) => isGuarded(cell),
};

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  const { kind, args } = JSON.parse(line);
  let reply;
  try {
    reply = { value: (await KINDS[kind](...args)) ?? null };
  } catch (error) {
    reply = { error: String(error?.message ?? error) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}
