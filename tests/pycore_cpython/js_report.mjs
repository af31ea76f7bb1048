// The app's prediction report writer (features/predict/report.js) and the spreadsheet guard
// (features/rules.js), answering one JSON request per stdin line:
// {"kind": "csv"|"json"|"probability"|"guard"|"isGuarded", "args": [...]} -> {"value": ...} or {"error": message}.
import { load, serve } from './js_serve.mjs';

const { predictionsCsv, predictionsJson, probabilityText } = await load('features/predict/report.js');
const { guardCell, isGuarded } = await load('features/rules.js');

const KINDS = {
  csv: (report) => predictionsCsv(report),
  json: (report) => predictionsJson(report),
  probability: (p) => probabilityText(p),
  guard: (value) => guardCell(value),
  isGuarded: (cell) => isGuarded(cell),
};

await serve(KINDS);
