// Class-name rules: the same as the Python core's tejas.dataset.validate_class_name (a test compares
// both), so a class made in the browser is a valid folder in every exported ImageFolder zip.

const WINDOWS_RESERVED = new Set(['con', 'prn', 'aux', 'nul',
  ...[1, 2, 3, 4, 5, 6, 7, 8, 9].flatMap((i) => [`com${i}`, `lpt${i}`])]);
const FORBIDDEN = new Set('<>:"/\\|?*');
export const MAX_NAME_CHARS = 100;

/** Python's repr() of a str (the core's messages use it), for the characters class names can hold. */
function pyRepr(name) {
  const quote = name.includes("'") && !name.includes('"') ? '"' : "'";
  const escape = (ch) => {
    const code = ch.charCodeAt(0);
    if (ch === '\\') return '\\\\';
    if (ch === quote) return `\\${ch}`;
    if (ch === '\n') return '\\n';
    if (ch === '\r') return '\\r';
    if (ch === '\t') return '\\t';
    if (code < 32 || code === 127) return `\\x${code.toString(16).padStart(2, '0')}`;
    return ch;
  };
  return quote + [...name].map(escape).join('') + quote;
}

/** Why `name` cannot be a class name, or null when it can. */
export function validateClassName(name) {
  if (!name.trim()) return 'class name is empty';
  if ([...name].every((ch) => ch === '.')) return `class name ${pyRepr(name)} is only dots`;
  if ([...name].length > MAX_NAME_CHARS) return `class name is longer than ${MAX_NAME_CHARS} characters`;
  const bad = [...new Set([...name].filter((ch) => FORBIDDEN.has(ch) || ch.charCodeAt(0) < 32 || ch.charCodeAt(0) === 127))].sort();
  if (bad.length) return `class name ${pyRepr(name)} contains ${pyRepr(bad[0])} (not allowed in folder names)`;
  if (WINDOWS_RESERVED.has(name.split('.')[0].trim().toLowerCase())) return `class name ${pyRepr(name)} is reserved on Windows`;
  if (' .'.includes(name.at(-1))) return `class name ${pyRepr(name)} ends with a space or dot`;
  return null;
}
