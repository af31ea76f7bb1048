// When a text sample is blank, by the rule the Python core and the server apply too (py/tejas/schemas/
// rules.json, text.$blank): nothing but class_name.blank's characters (White_Space and the invisible
// format characters). String.prototype.trim alone would let U+0085, U+180E, U+200B or U+001C-001F through,
// and the core's str.strip would let U+FEFF through.
import { RULES, codePoints } from '../rules.js';

const BLANK = codePoints(RULES.class_name.blank);

/** The reason a blank text is refused, in the words the core and the server use. */
export const BLANK_TEXT = RULES.text.messages.blank;

/** Whether `text` is blank: empty, or only White_Space and invisible characters (by code point). */
export function isBlankText(text) {
  for (const ch of text) if (!BLANK.has(ch.codePointAt(0))) return false;
  return true;
}
