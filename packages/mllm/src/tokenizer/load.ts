/**
 * One entry point from a parsed `tokenizer.json` to a Tokenizer: keel's own word-level file (model
 * WordLevel with WordTokenizer's normalizer and pre-tokenizer) becomes a WordTokenizer, read by our
 * code because @huggingface/tokenizers lacks a WordLevel model (see word.ts); anything else becomes
 * an HfTokenizer over the library.
 *
 * Malformed input fails before either is built, naming `source` and the field: not an object,
 * missing `model`, unknown `model.type`, `model.vocab` not a map of integer ids, duplicate ids,
 * malformed `added_tokens` or BPE `merges` (schema.ts).
 *
 * Non-goals: fetching or reading files (callers pass the parsed JSON, so this runs in a browser),
 * tokenizer formats other than tokenizer.json (sentencepiece .model, vocab.txt + merges.txt).
 */
import { HfTokenizer, type TokenizerConfigJson } from './hf.js';
import type { Tokenizer } from './tokenizer.js';
import { WordTokenizer, wordTokenizerMismatch } from './word.js';

/**
 * `json`: a parsed tokenizer.json; `source`: its name in errors (a path or URL); `config`: the
 * checkpoint's parsed tokenizer_config.json, if any (special token names, clean-up flag).
 */
export function parseTokenizerJson(json: unknown, source: string, config?: TokenizerConfigJson): Tokenizer {
  // Both builders validate the structure first (readTokenizerJson), so malformed input fails alike.
  if (wordTokenizerMismatch(json) === undefined) return WordTokenizer.fromJSON(json, source);
  return HfTokenizer.fromJSON(json, source, config);
}
