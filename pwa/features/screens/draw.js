// A drawing canvas: brush and eraser with a size, undo and clear. Drawings are opaque PNGs (white
// background), so they train and predict like photos.
import { field, h, newId } from './dom.js';

const SIZE = 280;
const UNDO_STEPS = 30;

/**
 * @param {{action: string, onDrawing: (blob: Blob) => void}} options  the button under the canvas
 * @returns {{element: HTMLElement, toBlob: () => Promise<Blob>, clear: () => void}}
 */
export function createDrawing({ action, onDrawing }) {
  const canvas = h('canvas', { width: SIZE, height: SIZE, class: 'drawing', role: 'img', 'aria-label': 'Drawing canvas: draw with a mouse, pen or finger' });
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const history = [];
  let drawing = false;
  let last = null;
  let dirty = false;
  const { field: sizeField, input: size } = field('Brush size', h('input', { type: 'range', min: 2, max: 40, value: 12 }));
  const group = newId('tool');
  const tool = (value, label, checked) => h('label', { class: 'segment' },
    h('input', { type: 'radio', name: group, value, checked }), h('span', {}, label));
  const tools = h('fieldset', { class: 'segmented' }, h('legend', {}, 'Tool'), tool('brush', 'Brush', true), tool('eraser', 'Eraser', false));
  const undo = h('button', { type: 'button', class: 'secondary small', disabled: true, onclick: () => {
    const previous = history.pop();
    if (previous) ctx.putImageData(previous, 0, 0);
    undo.disabled = !history.length;
  } }, 'Undo');
  const clearButton = h('button', { type: 'button', class: 'secondary small', onclick: () => { remember(); clear(); } }, 'Clear');
  const submit = h('button', { type: 'button', class: 'primary', onclick: async () => onDrawing(await toBlob()) }, action);

  function clear() {
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, SIZE, SIZE);
    dirty = false;
  }
  function remember() {
    history.push(ctx.getImageData(0, 0, SIZE, SIZE));
    if (history.length > UNDO_STEPS) history.shift();
    undo.disabled = false;
  }
  const point = (event) => {
    const rect = canvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * (SIZE / rect.width), (event.clientY - rect.top) * (SIZE / rect.height)];
  };
  const stroke = (to) => {
    const eraser = tools.querySelector('input:checked').value === 'eraser';
    ctx.strokeStyle = ctx.fillStyle = eraser ? '#ffffff' : '#111111';
    ctx.lineWidth = Number(size.value);
    ctx.lineCap = ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...to);
    ctx.stroke();
    last = to;
    dirty = true;
  };
  canvas.addEventListener('pointerdown', (event) => {
    event.preventDefault();
    canvas.setPointerCapture(event.pointerId);
    remember();
    drawing = true;
    last = point(event);
    stroke(point(event));
  });
  canvas.addEventListener('pointermove', (event) => { if (drawing) stroke(point(event)); });
  for (const type of ['pointerup', 'pointercancel']) canvas.addEventListener(type, () => { drawing = false; });

  async function toBlob() {
    return new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
  }
  clear();
  const element = h('div', { class: 'draw' },
    canvas,
    h('div', { class: 'draw-tools' }, tools, sizeField, h('div', { class: 'row' }, undo, clearButton)),
    h('div', { class: 'row' }, submit));
  return { element, toBlob, clear, isEmpty: () => !dirty };
}
