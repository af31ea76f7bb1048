// Small DOM helpers every screen shares: element building, toasts, a confirm dialog, thumbnails,
// number formats and file downloads.
import { getThumbnail } from '../dataset/projects.js';
import { MAX_TEXT_UNITS } from '../text/rules.js';

const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'textContent', 'htmlFor', 'open', 'multiple', 'selected']);

/** h('button', {class: 'primary', onclick}, 'Save') → element. null/false children and props are skipped. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (PROPERTIES.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  return append(el, ...children);
}

/** el.append(...children) skipping null, undefined and false (for conditional parts). */
export function append(el, ...children) {
  el.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

let uid = 0;
/** A fresh id for label/aria wiring. */
export const newId = (prefix = 'f') => `${prefix}-${++uid}`;

/** A labelled form field: {field, input}. */
export function field(label, input, hint = null) {
  input.id ||= newId('input');
  const hintEl = hint ? h('small', { class: 'hint', id: newId('hint') }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return { field: h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl), input };
}

/**
 * A message at the bottom of the screen. kind: 'info'|'error'. `action` = {label, run} adds a button
 * (e.g. Undo). Errors stay until dismissed; others fade after `seconds`.
 */
export function toast(message, { kind = 'info', action = null, seconds = 6 } = {}) {
  const box = document.getElementById('toasts');
  const close = () => item.remove();
  const item = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', {}, message),
    action && h('button', { type: 'button', class: 'link', onclick: () => { close(); action.run(); } }, action.label),
    h('button', { type: 'button', class: 'icon', 'aria-label': 'Dismiss', onclick: close }, '×'));
  box.append(item);
  if (kind !== 'error') setTimeout(close, seconds * 1000);
  return item;
}

/**
 * Show an error the user can act on (the message of an Error, or a string). `prefix` (e.g. "photo.zip: ")
 * is left out when the message already begins with that name, as the core's file messages do.
 */
export function showError(error, prefix = '') {
  const message = String(error?.message ?? error);
  const named = prefix && message.startsWith(prefix.replace(/:\s*$/, ''));
  toast(named ? message : `${prefix}${message}`, { kind: 'error' });
}

/** Ask before something that cannot be undone. Resolves true when confirmed. */
export function confirmDialog(title, text, { confirm = 'Delete', danger = true } = {}) {
  const dialog = document.getElementById('dialog');
  dialog.replaceChildren(h('form', { method: 'dialog', class: 'stack' },
    h('h2', { id: 'dialog-title' }, title), h('p', {}, text),
    h('div', { class: 'row end' },
      h('button', { value: 'cancel', class: 'secondary' }, 'Cancel'),
      h('button', { value: 'ok', class: danger ? 'danger' : 'primary' }, confirm))));
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

/** The dialog with `input` (in a labelled row), Cancel and Save: resolves read(input) on Save, null on Cancel. */
function inputDialog(title, label, input, { read, focus }) {
  const dialog = document.getElementById('dialog');
  const { field: row } = field(label, input);
  dialog.replaceChildren(h('form', { method: 'dialog', class: 'stack' }, h('h2', { id: 'dialog-title' }, title), row,
    h('div', { class: 'row end' },
      h('button', { value: 'cancel', class: 'secondary', formnovalidate: true }, 'Cancel'),
      h('button', { value: 'ok', class: 'primary' }, 'Save'))));
  dialog.returnValue = '';
  dialog.showModal();
  focus(input);
  return new Promise((resolve) => dialog.addEventListener('close',
    () => resolve(dialog.returnValue === 'ok' ? read(input) : null), { once: true }));
}

/**
 * "Wrong? Teach it the right answer": a class choice (the runner-up preselected), "Retrain now", and
 * "Add to dataset", which calls correct(classId, retrain) and shows its error. `noun`: 'image' or 'text'.
 */
export function correctionForm(classes, top, noun, correct) {
  const choice = h('select', { id: 'correct-class' }, classes.map((c) => h('option', {
    value: c.id, selected: c.id !== top[0].classId && c.id === (top[1] ?? top[0]).classId }, c.name)));
  const retrain = h('input', { type: 'checkbox', id: 'retrain-now', checked: true });
  return h('details', { id: 'wrong' }, h('summary', {}, 'Wrong? Teach it the right answer'),
    h('div', { class: 'stack' },
      h('div', { class: 'row wrap' }, h('label', { for: 'correct-class' }, `This ${noun} is`), choice),
      h('label', { class: 'row' }, retrain, 'Retrain now'),
      h('button', { type: 'button', class: 'primary', id: 'add-correction', onclick: () => correct(choice.value, retrain.checked).catch((error) => showError(error)) },
        'Add to dataset')));
}

/**
 * A prediction's result: `bars` (the top classes) and `correction` (the "Wrong?" form, hidden until the
 * first prediction); show(top) fills both. `noun` and correct(classId, retrain) as correctionForm's.
 */
export function predictionResult(classes, noun, correct) {
  const bars = h('ol', { class: 'bars', id: 'prediction', 'aria-label': 'Predicted classes, most likely first' });
  const correction = h('div', { class: 'correction', id: 'correction', hidden: true });
  const show = (top) => {
    probabilityBars(bars, top);
    correction.replaceChildren(correctionForm(classes, top, noun, correct));
    correction.hidden = false;
  };
  return { bars, correction, show };
}

/** Ask for a line of text (rename). Resolves the text, or null when cancelled. */
export function promptDialog(title, label, value = '') {
  const input = h('input', { type: 'text', value, required: true, maxlength: 100 });
  return inputDialog(title, label, input, { read: (i) => i.value.trim(), focus: (i) => i.select() });
}

const thumbnails = new Map();
/** An object URL for a sample's thumbnail (kept for the page's life: thumbnails never change). */
export function thumbnailUrl(contentId) {
  if (!thumbnails.has(contentId)) thumbnails.set(contentId, getThumbnail(contentId).then((blob) => URL.createObjectURL(blob)));
  return thumbnails.get(contentId);
}

/** An <img> that fills in its thumbnail when loaded. */
export function thumbnail(contentId, alt) {
  const img = h('img', { alt, width: 96, height: 96, decoding: 'async' });
  thumbnailUrl(contentId).then((url) => { img.src = url; }, () => { img.alt = `${alt} (image missing)`; });
  return img;
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined) return 'unknown';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let n = bytes;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export const percent = (x, digits = 0) => `${(x * 100).toFixed(digits)}%`;

export function formatSeconds(seconds) {
  if (!Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
}

export const plural = (n, word, many = `${word}s`) => `${n} ${n === 1 ? word : many}`;

/** Save a Blob as a file (the browser's download, no network involved). */
export function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** A file name made from a project name (letters, digits, - and _). */
export const fileStem = (name) => name.trim().replace(/[^\p{L}\p{N}_-]+/gu, '-').replace(/^-+|-+$/g, '') || 'tejas';

/** Disable a button while `work` runs, showing `busy` as its text. */
export async function busy(button, text, work) {
  const before = button.textContent;
  button.disabled = true;
  button.textContent = text;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.textContent = before;
  }
}

/** The address of a project's screen. */
export const projectUrl = (projectId, tab = 'data') => `#/p/${encodeURIComponent(projectId)}/${tab}`;

/**
 * A hidden file input opened by a visible button (input.click()); `onFiles(files)` gets what was
 * chosen. `label` names it for assistive technology.
 */
export function filePicker(label, { accept = null, multiple = false, directory = false, id = null } = {}, onFiles) {
  const input = h('input', {
    type: 'file', accept, multiple, webkitdirectory: directory, id, class: 'visually-hidden', tabindex: -1, 'aria-label': label,
  });
  input.addEventListener('change', () => {
    const files = [...input.files];
    input.value = '';
    if (files.length) onFiles(files);
  });
  return input;
}

/** A button that shows and hides `panel` (aria-expanded kept in step); `onClose` runs when it hides. */
export function panelToggle(label, panel, { onClose = null } = {}) {
  const button = h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false', 'aria-controls': panel.id, onclick: () => {
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (!open) onClose?.();
  } }, label);
  return button;
}

/** Ask for a longer text (editing a text sample). Resolves the text, or null when cancelled. */
export function textDialog(title, label, value = '') {
  const input = h('textarea', { rows: 6, required: true, maxlength: MAX_TEXT_UNITS, class: 'text-input' });
  input.value = value;
  return inputDialog(title, label, input, { read: (i) => i.value, focus: (i) => i.focus() });
}

/** Fill an <ol class="bars"> with top-k classes: name, a bar and the probability. */
export function probabilityBars(list, top) {
  list.replaceChildren(...top.map((t, i) => h('li', { class: i === 0 ? 'best' : '' },
    h('span', { class: 'name' }, t.name),
    h('span', { class: 'bar', 'aria-hidden': 'true' }, h('span', { style: `width: ${(t.probability * 100).toFixed(1)}%` })),
    h('span', { class: 'value' }, percent(t.probability, t.probability < 0.1 ? 1 : 0)))));
}

/** A <pre> of code with a Copy button (the clipboard, or a selection to copy by hand). */
export function codeBlock(id, code, label) {
  const pre = h('pre', { id, tabindex: 0, 'aria-label': label }, h('code', {}, code));
  const copy = h('button', { type: 'button', class: 'secondary small copy', onclick: async () => {
    try {
      await navigator.clipboard.writeText(code);
      toast('Copied.');
    } catch {
      getSelection().selectAllChildren(pre);
      toast('Selected: press Ctrl+C to copy.');
    }
  } }, 'Copy');
  return h('div', { class: 'code' }, copy, pre);
}
