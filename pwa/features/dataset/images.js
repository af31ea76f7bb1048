// Image intake in the browser: identify by bytes, check the browser can decode it and that its size is
// within the image rule the core and the server share (rules.json image), make a thumbnail.
import { imageSizeProblem } from '../rules.js';


const SIGNATURES = [
  ['png', (b) => b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47],
  ['jpeg', (b) => b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff],
  ['webp', (b) => b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45],
  ['gif', (b) => b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46],
  ['bmp', (b) => b[0] === 0x42 && b[1] === 0x4d],
];
export const MIME_TYPES = { png: 'image/png', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', bmp: 'image/bmp' };
const THUMBNAIL = 128;

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * {contentId, format, width, height, bytes, thumbnail} for an image Blob, or an Error whose message
 * says why it cannot be used (the caller reports it with the file name). `sizeRule: false` keeps an
 * image the rule refuses (one pulled from another device, stored before the rule): embedding it then
 * fails with the rule's sentence, instead of the whole pull.
 */
export async function readImage(blob, { sizeRule = true } = {}) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  if (!bytes.length) throw new Error('empty file (0 bytes)');
  const format = SIGNATURES.find(([, test]) => test(bytes))?.[0];
  if (!format) throw new Error('not an image (not PNG, JPEG, WebP, GIF or BMP)');
  const typed = new Blob([bytes], { type: MIME_TYPES[format] });
  let bitmap;
  try {
    bitmap = await createImageBitmap(typed);
  } catch {
    throw new Error(`corrupt ${format.toUpperCase()} (the browser cannot decode it)`);
  }
  const { width, height } = bitmap;
  const problem = sizeRule && imageSizeProblem(width, height);
  if (problem) {
    bitmap.close();
    throw new Error(problem);
  }
  const scale = Math.min(1, THUMBNAIL / Math.max(width, height));
  const canvas = new OffscreenCanvas(Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale)));
  canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  const thumbnail = await canvas.convertToBlob({ type: 'image/webp', quality: 0.8 });
  return { contentId: await sha256Hex(bytes), format, width, height, image: typed, thumbnail };
}
