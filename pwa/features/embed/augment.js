// Augmented views of an image, deterministic for a seed: horizontal flip, random resized crop and
// colour jitter on the decoded RGB pixels, before the normal preprocessing. Each view is embedded
// once and cached under its own augmentation id.
import { seededRandom } from '../random.js';

export const AUGMENTATION_VERSION = 'v1';

/** {rgb, width, height} → an augmented copy, parameters drawn from `seed`. */
export function augment({ rgb, width, height }, seed) {
  const next = seededRandom(seed);
  // Random resized crop: 60–100% of the area, aspect ratio 3:4 to 4:3 (torchvision's defaults, narrowed).
  const area = width * height * (0.6 + 0.4 * next());
  const ratio = Math.exp(Math.log(3 / 4) + (Math.log(4 / 3) - Math.log(3 / 4)) * next());
  const cw = Math.max(1, Math.min(width, Math.round(Math.sqrt(area * ratio))));
  const ch = Math.max(1, Math.min(height, Math.round(Math.sqrt(area / ratio))));
  const x0 = Math.floor(next() * (width - cw + 1));
  const y0 = Math.floor(next() * (height - ch + 1));
  const flip = next() < 0.5;
  const brightness = 0.8 + 0.4 * next();
  const contrast = 0.8 + 0.4 * next();
  const saturation = 0.8 + 0.4 * next();
  const out = new Uint8Array(cw * ch * 3);
  let mean = 0;
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const sx = flip ? x0 + cw - 1 - x : x0 + x;
      const i = ((y0 + y) * width + sx) * 3;
      mean += 0.299 * rgb[i] + 0.587 * rgb[i + 1] + 0.114 * rgb[i + 2];
    }
  }
  mean /= cw * ch;
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const sx = flip ? x0 + cw - 1 - x : x0 + x;
      const i = ((y0 + y) * width + sx) * 3;
      const gray = 0.299 * rgb[i] + 0.587 * rgb[i + 1] + 0.114 * rgb[i + 2];
      for (let c = 0; c < 3; c++) {
        let v = gray + (rgb[i + c] - gray) * saturation;  // saturation around the pixel's grey
        v = mean + (v - mean) * contrast;  // contrast around the image's mean grey
        out[(y * cw + x) * 3 + c] = Math.min(255, Math.max(0, Math.round(v * brightness)));
      }
    }
  }
  return { rgb: out, width: cw, height: ch };
}
