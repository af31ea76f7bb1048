// Filtering, sorting and picking a batch prediction's rows (pure functions; the table pages through them).

/** Which rows a filter keeps: 'all', 'errors' (images that could not be read), or a class name. */
export function filterRows(rows, filter = 'all') {
  if (filter === 'all') return rows;
  if (filter === 'errors') return rows.filter((r) => r.error);
  return rows.filter((r) => !r.error && r.top[0]?.name === filter);
}

const confidence = (row) => row.top[0]?.probability ?? NaN;

const SORTS = {
  // least sure first; rows without a prediction (errors) last, in file order
  'least-sure': (a, b) => (a.error ? 1 : 0) - (b.error ? 1 : 0) || confidence(a) - confidence(b) || a.index - b.index,
  'most-sure': (a, b) => (a.error ? 1 : 0) - (b.error ? 1 : 0) || confidence(b) - confidence(a) || a.index - b.index,
  file: (a, b) => a.file.localeCompare(b.file, undefined, { numeric: true }) || a.index - b.index,
  order: (a, b) => a.index - b.index,
};

/** The sorts offered, [value, label], the default first. */
export const SORT_CHOICES = [
  ['least-sure', 'Least sure first'],
  ['most-sure', 'Most sure first'],
  ['file', 'File name'],
  ['order', 'Original order'],
];

/** rows filtered then sorted (a new array). */
export function viewRows(rows, { filter = 'all', sort = 'least-sure' } = {}) {
  const kept = filterRows(rows, filter);
  return [...kept].sort(SORTS[sort] ?? SORTS['least-sure']);
}

/** The `n` rows with the lowest confidence among `rows` (rows without a prediction never count). */
export function leastSure(rows, n) {
  return rows.filter((r) => !r.error && r.top.length).sort(SORTS['least-sure']).slice(0, Math.max(0, n));
}

/** Counts per predicted class name, for the filter's labels. */
export function countByClass(rows) {
  const counts = new Map();
  for (const r of rows) if (!r.error && r.top[0]) counts.set(r.top[0].name, (counts.get(r.top[0].name) ?? 0) + 1);
  return counts;
}
