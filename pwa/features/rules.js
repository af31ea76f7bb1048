// The rules the browser shares with the Python core (tejas.rules), read from the one table both read:
// py/tejas/schemas/rules.json. Also how refusals quote texts and write numbers, so both word them alike,
// and the spreadsheet guard of every CSV cell written.
import RULES from '../py/tejas/schemas/rules.json' with { type: 'json' };

export { RULES };

/** The code points of ["0000-001F", "007F", ...]. */
export function codePoints(ranges) {
  const points = new Set();
  for (const item of ranges) {
    const [first, last = first] = item.split('-').map((hex) => parseInt(hex, 16));
    for (let code = first; code <= last; code++) points.add(code);
  }
  return points;
}

const ESCAPE = codePoints(RULES.quote.escape);
const NAMED = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };
const hex = (code, width) => code.toString(16).padStart(width, '0');

/** `text` in quotes as Python's repr() writes it, escaping exactly the table's code points. */
export function quote(text) {
  const mark = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of text) {  // by code point; a lone surrogate is one
    const code = ch.codePointAt(0);
    if (ch === mark) out += `\\${ch}`;
    else if (ch in NAMED) out += NAMED[ch];
    else if (ESCAPE.has(code)) out += code < 0x100 ? `\\x${hex(code, 2)}` : code < 0x10000 ? `\\u${hex(code, 4)}` : `\\U${hex(code, 8)}`;
    else out += ch;
  }
  return mark + out + mark;
}

/** A number as Python's repr(float(x)) writes it: 1.0, 0.2, 1e-07, nan, inf. */
export function formatFloat(x) {
  if (typeof x !== 'number') return String(x);
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // String() gives the same shortest round-trip digits as Python; only the layout differs.
  const [, whole, fraction = '', exponent = '0'] = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(Math.abs(x)));
  let digits = whole + fraction;
  let point = whole.length + Number(exponent);  // value = 0.digits × 10^point
  const zeros = /^0*/.exec(digits)[0].length;
  digits = digits.slice(zeros).replace(/0+$/, '');
  point -= zeros;
  const sign = x < 0 ? '-' : '';
  if (point <= -4 || point > 16) {
    const e = point - 1;
    const mantissa = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${mantissa}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** An integer a JS number holds exactly digit by digit (12), any other number as formatFloat (2**60 as 1.152921504606847e+18). */
export function formatNumber(x) {
  return Number.isSafeInteger(x) ? String(x) : formatFloat(x);
}

/** The template with its {placeholders} filled (nothing else in it is special). */
export function message(template, values = {}) {
  return template.replace(/\{(\w+)\}/g, (_, key) => String(values[key]));
}

const IMAGE = RULES.image;

/** A pixel limit in megapixels as messages write it: 64, 0.5. */
export function megapixels(maxPixels) {
  const mp = maxPixels / 1e6;
  return Number.isInteger(mp) ? String(mp) : formatFloat(mp);
}

/**
 * Why a width × height image costs too much to decode and resize (rules.json image: its pixels and the
 * ratio of its sides), or null; the same answers as the core's tejas.rules.image_size_problem.
 */
export function imageSizeProblem(width, height, maxPixels = IMAGE.max_pixels, maxAspectRatio = IMAGE.max_aspect_ratio) {
  if (width * height > maxPixels) return message(IMAGE.messages.too_large, { width, height, megapixels: megapixels(maxPixels) });
  if (maxAspectRatio != null && Math.max(width, height) > maxAspectRatio * Math.min(width, height)) {
    return message(IMAGE.messages.too_narrow, { width, height, ratio: formatNumber(maxAspectRatio) });
  }
  return null;
}

/** torchvision's resize of the shorter side to `shorter`: the long side scales alike, truncated. */
export function resizedSize(width, height, shorter) {
  if (width <= height) return [shorter, Math.trunc((shorter * height) / width)];
  return [Math.trunc((shorter * width) / height), shorter];
}

/** Why resizing a width × height image to a `shorter` px shorter side would cost too much, or null. */
export function resizeProblem(width, height, shorter, maxPixels = IMAGE.max_pixels) {
  const [resizedWidth, resizedHeight] = resizedSize(width, height, shorter);
  if (resizedWidth * resizedHeight <= maxPixels) return null;
  return message(IMAGE.messages.resized_too_large, {
    width, height, shorter, resized_width: resizedWidth, resized_height: resizedHeight, megapixels: megapixels(maxPixels),
  });
}

const CELL = RULES.spreadsheet_cell;
const PLAIN_NUMBER = new RegExp(`^(?:${CELL.plain_number})$`);
const startsFormula = (text) => CELL.formula_starts.some((start) => text.startsWith(start));

/** Whether `cell` is already guarded (rules.json spreadsheet_cell): one ' or more, then a formula start. */
export function isGuarded(cell) {
  let i = 0;
  while (cell.startsWith(CELL.guard, i)) i += CELL.guard.length;
  return i > 0 && startsFormula(cell.slice(i));
}

/**
 * A CSV cell a spreadsheet shows as text (rules.json spreadsheet_cell): one it would run as a formula
 * (=, +, -, @, tab or CR first, but not a plain number such as -1 or +2.5) or one already guarded
 * ('=..., ''-x) gets a leading '; the same as the core's tejas.rules.guard_cell.
 */
export function guardCell(value) {
  const text = value === null || value === undefined ? '' : String(value);
  return (startsFormula(text) && !PLAIN_NUMBER.test(text)) || isGuarded(text) ? CELL.guard + text : text;
}
