// A batch prediction as files to download, in the one report format that py/tejas/schemas/report.json
// defines (the core's tejas.predictions writes it too): CSV (RFC 4180, UTF-8, every cell through the
// spreadsheet guard of rules.json) and JSON. Rows go in the order of the source (file order, or the zip's
// entry order).
import REPORT from '../../py/tejas/schemas/report.json' with { type: 'json' };
import { formatFloat, guardCell } from '../rules.js';

const CSV = REPORT['x-csv'];
const CSV_NEEDS_QUOTES = /[",\r\n]/;

/** One CSV cell: guarded against formula injection (rules.json spreadsheet_cell), quoted when it must be. */
export function csvCell(value) {
  const text = guardCell(value);
  return CSV_NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * `x` with exactly `decimals` decimals as Python's format(x, '.6f') writes it: rounded half to even on the
 * exact binary value. toFixed rounds an exact tie up (0.0078125 → 0.007813, Python 0.007812); a tie is
 * x·2^(decimals+1) an odd integer, and is settled here in integers.
 */
export function fixedDecimals(x, decimals) {
  if (!Number.isFinite(x)) return formatFloat(x);
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const scaled = Math.abs(x) * 2 ** (decimals + 1);
  if (!Number.isInteger(scaled) || scaled % 2 === 0) return sign + Math.abs(x).toFixed(decimals);
  // |x|·10^decimals = (scaled·5^decimals)/2 = k + ½: the even one of k and k + 1
  const below = (BigInt(scaled) * 5n ** BigInt(decimals) - 1n) / 2n;
  const digits = String(below % 2n === 0n ? below : below + 1n).padStart(decimals + 1, '0');
  return `${sign}${digits.slice(0, -decimals)}.${digits.slice(-decimals)}`;
}

/** A probability as the report's CSV writes it (report.json x-csv): 0.75 → 0.750000. */
export const probabilityText = (p) => fixedDecimals(p, CSV.probability_decimals);

const byIndex = (rows) => [...rows].sort((a, b) => a.index - b.index);

/** The CSV's columns for top-k (report.json x-csv): file, predicted, confidence, class_1, ..., error. */
export function csvHeader(topK) {
  const ranks = [];
  for (let rank = 1; rank <= topK; rank++) ranks.push(...CSV.each_rank.map((c) => c.replace('{rank}', rank)));
  return [...CSV.before, ...ranks, ...CSV.after];
}

/**
 * The predictions (predictMany's result, or {topK, rows}) as CSV text: file, predicted, confidence,
 * class_1, probability_1, ... class_k, probability_k, error; CRLF line ends.
 */
export function predictionsCsv({ topK, rows }) {
  const lines = [csvHeader(topK).join(',')];
  for (const row of byIndex(rows)) {
    const best = row.top[0];
    const cells = [row.file, best?.name ?? '', best ? probabilityText(best.probability) : ''];
    for (let i = 0; i < topK; i++) {
      const t = row.top[i];
      cells.push(t?.name ?? '', t ? probabilityText(t.probability) : '');
    }
    cells.push(row.error || '');
    lines.push(cells.map(csvCell).join(','));
  }
  return lines.join(CSV.line_end) + CSV.line_end;
}

/**
 * The predictions as JSON text (report.json): {model, top_k, images, failed, rows: [{file, sha256, top:
 * [{class, probability}], error}]}.
 */
export function predictionsJson({ model, topK, rows }) {
  const ordered = byIndex(rows);
  return JSON.stringify({
    model: model ?? null,
    top_k: topK,
    images: ordered.length,
    failed: ordered.filter((r) => r.error).length,
    rows: ordered.map((r) => ({
      file: r.file,
      sha256: r.sha256 ?? null,
      top: r.top.map((t) => ({ class: t.name, probability: t.probability })),
      error: r.error ?? null,
    })),
  }, null, 1);
}
