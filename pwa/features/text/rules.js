// What a text sample may be, by the rules the Python core and the server apply too (py/tejas/schemas/
// rules.json, text): no NUL, not blank, at most text.max_characters code points. Blank (text.$blank):
// nothing but class_name.blank's characters (White_Space and the invisible format characters). String.prototype.trim alone would let U+0085, U+180E, U+200B or U+001C-001F through,
// and the core's str.strip would let U+FEFF through.
import { RULES, codePoints, message } from '../rules.js';

const BLANK = codePoints(RULES.class_name.blank);

/** The reason a blank text is refused, in the words the core and the server use. */
export const BLANK_TEXT = RULES.text.messages.blank;

/** Whether `text` is blank: empty, or only White_Space and invisible characters (by code point). */
export function isBlankText(text) {
  for (const ch of text) if (!BLANK.has(ch.codePointAt(0))) return false;
  return true;
}

/** At most this many characters per text, counted in code points (rules.json text.max_characters). */
export const MAX_TEXT_CHARACTERS = RULES.text.max_characters;

/** A textarea's maxlength for a text sample: HTML counts UTF-16 units, two for a code point beyond U+FFFF. */
export const MAX_TEXT_UNITS = 2 * MAX_TEXT_CHARACTERS;

/** Why the string `text` cannot be a text sample, or null: in the words of the core's tejas.rules.text_problem. */
export function textProblem(text) {
  if (text.includes('\0')) return RULES.text.messages.nul;
  if (isBlankText(text)) return BLANK_TEXT;
  // code points, not String.length's UTF-16 units (an emoji is one character, as in Python); counted only
  // when the UTF-16 length says it could be over
  const count = text.length > MAX_TEXT_CHARACTERS ? [...text].length : text.length;
  if (count <= MAX_TEXT_CHARACTERS) return null;
  return message(RULES.text.messages.too_long,
    { count: count.toLocaleString('en'), max: MAX_TEXT_CHARACTERS.toLocaleString('en') });
}
