// A batch prediction as files to download: CSV (RFC 4180, UTF-8, safe to open in a spreadsheet) and JSON.
// Rows go in the order of the source (file order, or the zip's entry order).

const CSV_NEEDS_QUOTES = /[",\r\n]/;
// A spreadsheet runs a cell that starts with one of these as a formula; file names come from users.
const FORMULA_START = /^[=+\-@\t\r]/;

/** One CSV cell: text neutralised against formula injection (a leading '), quoted when it must be. */
export function csvCell(value) {
  if (value === null || value === undefined) return '';
  let text = String(value);
  if (typeof value === 'string' && FORMULA_START.test(text)) text = `'${text}`;
  return CSV_NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A probability as text: 7 significant digits (float32 carries about that many). */
const probabilityText = (p) => String(Number(p.toPrecision(7)));

const byIndex = (rows) => [...rows].sort((a, b) => a.index - b.index);

/**
 * The predictions (predictMany's result, or {topK, rows}) as CSV text: file, predicted, confidence,
 * class_1, probability_1, ... class_k, probability_k, error; CRLF line ends.
 */
export function predictionsCsv({ topK, rows }) {
  const header = ['file', 'predicted', 'confidence'];
  for (let i = 1; i <= topK; i++) header.push(`class_${i}`, `probability_${i}`);
  header.push('error');
  const lines = [header.join(',')];
  for (const row of byIndex(rows)) {
    const best = row.top[0];
    const cells = [row.file, best?.name ?? '', best ? probabilityText(best.probability) : ''];
    for (let i = 0; i < topK; i++) {
      const t = row.top[i];
      cells.push(t?.name ?? '', t ? probabilityText(t.probability) : '');
    }
    cells.push(row.error ?? '');
    lines.push(cells.map(csvCell).join(','));
  }
  return `${lines.join('\r\n')}\r\n`;
}

/** The predictions as JSON text: {model, top_k, rows: [{file, top: [{class, probability}], error}]}. */
export function predictionsJson({ model, topK, rows }) {
  return JSON.stringify({
    model: model ?? null,
    top_k: topK,
    rows: byIndex(rows).map((r) => ({
      file: r.file, top: r.top.map((t) => ({ class: t.name, probability: t.probability })), error: r.error ?? null,
    })),
  }, null, 1);
}
