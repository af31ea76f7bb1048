// Text → token ids for a sentence encoder, read from the model's own tokenizer.json (the vendored
// @huggingface/tokenizers, never a CDN or a model hub), with the ids Python `tokenizers` gives:
// truncated at the model's limit keeping the closing special token, padded to the longest text of
// the batch. No DOM: runs in a worker or the page.
import { BertNormalizer, Tokenizer } from '../../vendor/tokenizers/tokenizers.min.mjs';

/**
 * BertNormalizer as Python `tokenizers` (Rust) runs it. @huggingface/tokenizers 0.2.0 differs in two
 * places, each measured against Python over every code point:
 * - it spaces out CJK ideographs one UTF-16 unit at a time, so ideographs outside the BMP
 *   (Extensions B–F, U+20000…) stay glued into one word: '𠀀𠀁' gives one [UNK] where Python gives two;
 * - it lowercases the whole string, so a word-final capital sigma becomes 'ς', where Rust maps each
 *   character on its own ('ΟΔΟΣ' → 'οδοσ'), which is what the vocabulary was built from.
 * Left as they are: ~660 rare code points (marks, punctuation and format characters added in recent
 * Unicode versions, e.g. U+061D, U+0890, U+2E43…, mostly historic scripts) that Rust's older Unicode
 * tables and the browser's classify differently (measured in Node 20 over all 1.1M code points).
 */
class PythonBertNormalizer extends BertNormalizer {
  tokenize_chinese_chars(text) {
    let out = '';
    for (const char of text) {
      out += isChineseChar(char.codePointAt(0)) ? ` ${char} ` : char;
    }
    return out;
  }

  normalize(text) {
    if (this.config.clean_text) text = this.clean_text(text);
    if (this.config.handle_chinese_chars) text = this.tokenize_chinese_chars(text);
    const lowercase = this.config.lowercase;
    const stripAccents = this.config.strip_accents ?? lowercase;  // Rust: strip_accents.unwrap_or(lowercase)
    if (lowercase) text = Array.from(text, (char) => char.toLowerCase()).join('');
    if (stripAccents) text = this.strip_accents(text);
    return text;
  }
}

// The CJK ideograph ranges Rust `tokenizers` spaces out. Extension E starts at 0x2B920 there (the
// library and Google's BERT say 0x2B820): U+2B820…U+2B91F stay glued to their neighbours as in Python.
const CJK_RANGES = [
  [0x4e00, 0x9fff], [0x3400, 0x4dbf], [0x20000, 0x2a6df], [0x2a700, 0x2b73f],
  [0x2b740, 0x2b81f], [0x2b920, 0x2ceaf], [0xf900, 0xfaff], [0x2f800, 0x2fa1f],
];
const isChineseChar = (cp) => CJK_RANGES.some(([first, last]) => cp >= first && cp <= last);

/** How many special tokens the post-processor puts before and after a single text. */
function specialsAround(postProcessor) {
  if (postProcessor?.type === 'TemplateProcessing') {
    const single = postProcessor.single;
    const at = single.findIndex((piece) => 'Sequence' in piece);
    return { before: at, after: single.length - at - 1 };
  }
  if (postProcessor == null) return { before: 0, after: 0 };
  // BertProcessing, RobertaProcessing: [CLS] text [SEP] / <s> text </s>
  if (['BertProcessing', 'RobertaProcessing'].includes(postProcessor.type)) return { before: 1, after: 1 };
  throw new Error(`tokenizer.json: post-processor ${postProcessor.type} is not supported (truncation would not keep its special tokens)`);
}

async function fetchJson(url, what, signal) {
  let response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new Error(`${what} (${url}): not reachable (${error.message}); is the app's copy of it installed?`);
  }
  if (!response.ok) throw new Error(`${what} (${url}): HTTP ${response.status}; export the text model again (tejas export --modality text)`);
  try {
    return await response.json();
  } catch {
    throw new Error(`${what} (${url}): not JSON; the file is damaged, export it again`);
  }
}

/** A tokenizer for one model: encode(texts) gives the int64 tensors a BERT-style ONNX model takes. */
export class TextTokenizer {
  /**
   * @param {object} tokenizerJson the parsed tokenizer.json
   * @param {object} [tokenizerConfig] the parsed tokenizer_config.json ({} when the model has none)
   */
  constructor(tokenizerJson, tokenizerConfig = {}) {
    this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    if (tokenizerJson.normalizer?.type === 'BertNormalizer') {
      this.tokenizer.normalizer = new PythonBertNormalizer(tokenizerJson.normalizer);
    }
    this.specials = specialsAround(tokenizerJson.post_processor);
    // tokenizer.json's own truncation is what Python applies (128 for all-MiniLM-L6-v2, although
    // its sentence-transformers config says 256); the model's hard limit bounds what a caller may ask.
    this.modelMaxLength = tokenizerConfig.model_max_length ?? Infinity;
    this.maxLength = tokenizerJson.truncation?.max_length ?? (Number.isFinite(this.modelMaxLength) ? this.modelMaxLength : 512);
    const padding = tokenizerJson.padding;
    this.padId = padding?.pad_id ?? this.tokenizer.token_to_id(padding?.pad_token ?? '[PAD]') ?? 0;
    this.padTypeId = padding?.pad_type_id ?? 0;
    if (padding && padding.direction !== 'Right') throw new Error('tokenizer.json: only right padding is supported');
  }

  /**
   * One text's ids, truncated to maxLength like Python `tokenizers` (longest-first, right): the text's
   * tokens are cut, the special tokens around them kept.
   * @returns {{ids: number[], typeIds: number[]}}
   */
  encodeOne(text, maxLength = this.maxLength) {
    if (typeof text !== 'string') throw new TypeError(`text must be a string, not ${text === null ? 'null' : typeof text}`);
    // Python cannot even pass a lone surrogate to Rust; here it becomes U+FFFD, which BERT drops.
    const { ids, token_type_ids: typeIds } = this.tokenizer.encode(text.toWellFormed(), { return_token_type_ids: true });
    if (ids.length <= maxLength) return { ids, typeIds };
    const { before, after } = this.specials;
    const keep = maxLength - after;
    const cut = (list) => [...list.slice(0, keep), ...list.slice(list.length - after)];
    return { ids: cut(ids), typeIds: cut(typeIds) };
  }

  /**
   * Encode a batch, padded on the right to its longest text (not to the model's limit).
   * @param {string[]} texts
   * @param {{maxLength?: number}} [options] at most this many tokens per text, special tokens included
   * @returns {{inputIds: BigInt64Array, attentionMask: BigInt64Array, tokenTypeIds: BigInt64Array,
   *   dims: [number, number], lengths: number[]}} row-major [texts.length, longest]
   */
  encode(texts, { maxLength = this.maxLength } = {}) {
    if (!Array.isArray(texts)) throw new TypeError('encode(texts): texts must be an array of strings');
    const least = this.specials.before + this.specials.after + 1;
    if (!Number.isInteger(maxLength) || maxLength < least || maxLength > this.modelMaxLength) {
      throw new RangeError(`maxLength ${maxLength}: must be an integer from ${least} to the model's limit ${this.modelMaxLength}`);
    }
    const rows = texts.map((text, i) => {
      try {
        return this.encodeOne(text, maxLength);
      } catch (error) {
        throw new TypeError(`text ${i}: ${error.message}`);
      }
    });
    const longest = rows.reduce((most, row) => Math.max(most, row.ids.length), 0);
    const size = rows.length * longest;
    const inputIds = new BigInt64Array(size).fill(BigInt(this.padId));
    const attentionMask = new BigInt64Array(size);
    const tokenTypeIds = new BigInt64Array(size).fill(BigInt(this.padTypeId));
    rows.forEach(({ ids, typeIds }, r) => {
      const start = r * longest;
      for (let i = 0; i < ids.length; i++) {
        inputIds[start + i] = BigInt(ids[i]);
        attentionMask[start + i] = 1n;
        tokenTypeIds[start + i] = BigInt(typeIds[i]);
      }
    });
    return { inputIds, attentionMask, tokenTypeIds, dims: [rows.length, longest], lengths: rows.map((row) => row.ids.length) };
  }
}

/**
 * Load a model's tokenizer from the app's own files.
 * @param {string|URL} tokenizerUrl tokenizer.json
 * @param {string|URL|null} [configUrl] tokenizer_config.json, if the model has one
 * @param {{signal?: AbortSignal}} [options]
 */
export async function loadTokenizer(tokenizerUrl, configUrl = null, { signal } = {}) {
  const [tokenizerJson, config] = await Promise.all([
    fetchJson(tokenizerUrl, 'tokenizer.json', signal),
    configUrl ? fetchJson(configUrl, 'tokenizer_config.json', signal) : {},
  ]);
  return new TextTokenizer(tokenizerJson, config);
}
