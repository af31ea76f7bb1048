// Image → backbone input, exactly as the artifact manifest's `input` says and as the exporter checks it:
// shorter side resized with antialiased bilinear filtering (Pillow's algorithm, which torchvision's
// uint8 antialias resize reproduces bit for bit), centre crop, scale to [0,1], normalise per channel.
// Pure functions on RGBA pixels: they run in a worker, in any browser, with no canvas smoothing
// (whose filter differs between browsers and from the native reference).

import { imageSizeProblem, resizeProblem, resizedSize } from '../rules.js';

export { resizedSize };  // torchvision's resize(shorter side): the long side is truncated

const PRECISION_BITS = 32 - 8 - 2; // Pillow's fixed-point precision for 8-bit images

/** Pillow's precomputed bilinear coefficients (Resample.c precompute_coeffs), as fixed-point ints. */
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = 1.0 * filterScale; // bilinear filter support = 1
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * taps);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterScale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < count; x++) {
      const w = Math.max(0, 1.0 - Math.abs((x + xmin - center + 0.5) * ss)); // triangle filter
      weights[xx * taps + x] = w;
      total += w;
    }
    for (let x = 0; x < count; x++) {
      const w = total ? weights[xx * taps + x] / total : 0;
      // normalize_coeffs_8bpc: round half away from zero
      weights[xx * taps + x] = Math.trunc(w < 0 ? w * (1 << PRECISION_BITS) - 0.5 : w * (1 << PRECISION_BITS) + 0.5);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { bounds, weights, taps };
}

const clip8 = (value) => Math.min(255, Math.max(0, Math.floor(value / (1 << PRECISION_BITS))));

/** One Pillow resampling pass over 3 interleaved channels, along x (horizontal) or y. */
function pass(src, width, height, outSize, horizontal) {
  const { bounds, weights, taps } = coefficients(horizontal ? width : height, outSize);
  const outW = horizontal ? outSize : width;
  const outH = horizontal ? height : outSize;
  const out = new Uint8Array(outW * outH * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) {
      const o = horizontal ? x : y;
      const start = bounds[o * 2];
      const count = bounds[o * 2 + 1];
      let r = half, g = half, b = half;
      for (let k = 0; k < count; k++) {
        const w = weights[o * taps + k];
        const i = horizontal ? (y * width + start + k) * 3 : ((start + k) * width + x) * 3;
        r += src[i] * w;
        g += src[i + 1] * w;
        b += src[i + 2] * w;
      }
      const j = (y * outW + x) * 3;
      out[j] = clip8(r);
      out[j + 1] = clip8(g);
      out[j + 2] = clip8(b);
    }
  }
  return out;
}

/** Resize interleaved RGB (Uint8) to outW×outH like PIL.Image.resize(..., BILINEAR). */
export function resizeRgb(rgb, width, height, outW, outH) {
  let pixels = rgb;
  let w = width;
  // Pillow runs the horizontal pass first, each only when that side changes.
  if (outW !== w) {
    pixels = pass(pixels, w, height, outW, true);
    w = outW;
  }
  if (outH !== height) pixels = pass(pixels, w, height, outH, false);
  return pixels;
}

/** Python's round(): halves to even (torchvision's centre crop offsets use it). */
export function roundHalfEven(value) {
  const floor = Math.floor(value);
  const diff = value - floor;
  if (diff !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** RGBA bytes (ImageData.data) → RGB bytes. */
export function rgbaToRgb(rgba) {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

/**
 * The backbone input for one image: Float32Array [3, size, size] (CHW) written into `out` at `offset`.
 * `input` is manifest.input: {size:[h,w], resize:{shorter_side}, scale, mean, std}.
 */
export function preprocess(rgb, width, height, input, out = null, offset = 0) {
  // the core's image rule (rules.json image): a 3000×1 strip would resize to 549,000×183 pixels
  const problem = imageSizeProblem(width, height) ?? resizeProblem(width, height, input.resize.shorter_side);
  if (problem) throw new Error(problem);
  const [cropH, cropW] = input.size;
  const [rw, rh] = resizedSize(width, height, input.resize.shorter_side);
  const resized = resizeRgb(rgb, width, height, rw, rh);
  const top = roundHalfEven((rh - cropH) / 2);
  const left = roundHalfEven((rw - cropW) / 2);
  const plane = cropH * cropW;
  const target = out ?? new Float32Array(3 * plane);
  for (let c = 0; c < 3; c++) {
    const mean = input.mean[c];
    const std = input.std[c];
    for (let y = 0; y < cropH; y++) {
      const row = (top + y) * rw;
      for (let x = 0; x < cropW; x++) {
        const v = resized[(row + left + x) * 3 + c];
        target[offset + c * plane + y * cropW + x] = Math.fround((Math.fround(v / 255) - mean) / std);
      }
    }
  }
  return target;
}
