// Class-name rules from the table the Python core reads too (py/tejas/schemas/rules.json), applied the
// same way as tejas.rules.validate_class_name (a property test compares both), so a class made in the
// browser is a valid folder in every exported ImageFolder zip. Synchronous: a form field calls it.
import { RULES, codePoints, message, quote } from '../rules.js';

const NAMES = RULES.class_name;
const BLANK = codePoints(NAMES.blank);
const FORBIDDEN = codePoints(NAMES.forbidden);
for (const ch of NAMES.forbidden_chars) FORBIDDEN.add(ch.codePointAt(0));
const RESERVED = new Set(NAMES.reserved);
export const MAX_NAME_CHARS = NAMES.max_chars;

/** The code points `chars` joined, without blank characters at either end. */
function stripBlank(chars) {
  let start = 0;
  let end = chars.length;
  while (start < end && BLANK.has(chars[start].codePointAt(0))) start++;
  while (end > start && BLANK.has(chars[end - 1].codePointAt(0))) end--;
  return chars.slice(start, end).join('');
}

/** Whether `name` is empty or only blank characters (rules.json class_name.blank): a project's name must
 * not be, on the server too (tejas.rules.is_blank_text, the same set). */
export const isBlankName = (name) => [...name].every((ch) => BLANK.has(ch.codePointAt(0)));

/** Why `name` cannot be a class name, or null when it can. */
export function validateClassName(name) {
  const chars = [...name];  // code points, as Python counts them
  const codes = chars.map((ch) => ch.codePointAt(0));
  const says = NAMES.messages;
  if (codes.every((code) => BLANK.has(code))) return says.empty;
  if (chars.every((ch) => ch === '.')) return message(says.dots, { name: quote(name) });
  if (chars.length > MAX_NAME_CHARS) return message(says.too_long, { max_chars: MAX_NAME_CHARS });
  const bad = codes.filter((code) => FORBIDDEN.has(code));
  if (bad.length) return message(says.forbidden, { name: quote(name), char: quote(String.fromCodePoint(Math.min(...bad))) });
  const stem = stripBlank([...name.split('.')[0]]).replace(/[A-Z]/g, (ch) => ch.toLowerCase());
  if (RESERVED.has(stem)) return message(says.reserved, { name: quote(name) });
  if (NAMES.bad_last.includes(chars.at(-1))) return message(says.bad_last, { name: quote(name) });
  return null;
}
