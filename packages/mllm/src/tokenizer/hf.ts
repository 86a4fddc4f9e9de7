/**
 * HfTokenizer: the Tokenizer contract over a real checkpoint's `tokenizer.json` (BPE, byte-level
 * BPE, WordPiece, Unigram, and WordLevel through the library's fallback), encoded and decoded by
 * @huggingface/tokenizers (a pure-JS port of Hugging Face tokenizers, so it runs in the browser).
 *
 * Legend: V = vocabulary size = one more than the largest id of the model vocab or added_tokens.
 *
 * Special tokens, by role, first match wins:
 *   1. tokenizer_config.json's `<role>_token` (string or {content}); naming a token the vocabulary
 *      lacks is an error at load time;
 *   2. unk only: `model.unk_token`;
 *   3. common names, see SPECIAL_CANDIDATES (`<s>`, `</s>`, `<unk>`, `<pad>`, `<image>`, ...);
 *   4. pad only: falls back to eos, then unk. Padded positions are masked out of attention and of
 *      the loss, so any real token serves; eos is what Llama-family checkpoints use.
 * A role still unresolved is reported when read: `specials.image` throws, naming the role and what
 * was tried. `findSpecial` asks without throwing.
 *
 * Behaviour decided here rather than by the library:
 *   - encode never adds specials (`add_special_tokens: false`), whatever the post-processor says;
 *   - a WordPiece/WordLevel piece outside the vocabulary with no unk token to stand in is an
 *     error (the library returns an undefined id). A BPE model with neither unk nor byte fallback
 *     drops such characters, as Hugging Face's Rust library does; real byte-level vocabularies hold
 *     all 256 bytes, so it does not arise there;
 *   - `clean_up_tokenization_spaces` defaults to false (the library's default is true), so decode
 *     does not rewrite " ?" to "?" unless tokenizer_config.json asks for it;
 *   - WordLevel: the library has no WordLevel model and reads the unk token from the config, so
 *     `model.unk_token` is passed as the config's `unk_token` when the config names none.
 *
 * Non-goals: chat templates, pair encoding, offsets, training tokenizers.
 */
import { Tokenizer as LibraryTokenizer } from '@huggingface/tokenizers';
import { isPlainObject, readTokenizerJson, type TokenizerJson } from './schema.js';
import {
  SPECIAL_TOKEN_NAMES,
  checkTokenIds,
  describeValue,
  type DecodeOptions,
  type SpecialTokenIds,
  type SpecialTokenName,
  type Tokenizer,
} from './tokenizer.js';

/** The contents of a tokenizer_config.json (only the *_token fields and clean-up flag are read here). */
export type TokenizerConfigJson = Record<string, unknown>;

/** Names checkpoints commonly give each role, in the order they are tried. */
export const SPECIAL_CANDIDATES: Readonly<Record<SpecialTokenName, readonly string[]>> = Object.freeze({
  pad: ['<pad>', '[PAD]', '<|pad|>'],
  bos: ['<s>', '<bos>', '<|begin_of_text|>', '<|startoftext|>'],
  eos: ['</s>', '<eos>', '<|end_of_text|>', '<|endoftext|>'],
  unk: ['<unk>', '[UNK]', '<|unk|>'],
  image: ['<image>', '<|image|>', '<|image_pad|>'],
});

/** Text run through a new tokenizer once at load: letters, digits, punctuation, spaces. */
const PROBE_TEXT = 'Hello, world! 123 what is this?';

/** tokenizer_config.json writes a special either as "<s>" or as an AddedToken {content: "<s>", ...}. */
function configTokenContent(config: TokenizerConfigJson, key: string, source: string): string | undefined {
  const value = config[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (isPlainObject(value) && typeof value['content'] === 'string') return value['content'];
  throw new Error(`${source}: tokenizer_config field "${key}" must be a string or {content: string}, got ${describeValue(value)}`);
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specials: SpecialTokenIds;
  private readonly found: Readonly<Partial<Record<SpecialTokenName, number>>>;

  private constructor(
    /** Names the file in errors. */
    readonly source: string,
    private readonly json: Record<string, unknown>,
    private readonly inner: LibraryTokenizer,
    found: Partial<Record<SpecialTokenName, number>>,
    vocabSize: number,
  ) {
    this.found = Object.freeze({ ...found });
    this.vocabSize = vocabSize;
    const specials = {} as Record<SpecialTokenName, number>;
    for (const name of SPECIAL_TOKEN_NAMES) {
      Object.defineProperty(specials, name, { enumerable: true, get: () => this.requireSpecial(name) });
    }
    this.specials = Object.freeze(specials);
  }

  /**
   * Builds a tokenizer from a tokenizer.json object and, optionally, its tokenizer_config.json;
   * `source` names the file in errors.
   */
  static fromJSON(json: unknown, source: string, config: TokenizerConfigJson = {}): HfTokenizer {
    const parsed = readTokenizerJson(json, source);
    if (!isPlainObject(config)) {
      throw new Error(`${source}: tokenizer_config must be an object, got ${describeValue(config)}`);
    }
    const named: Partial<Record<SpecialTokenName, string>> = {};
    for (const name of SPECIAL_TOKEN_NAMES) {
      const content = configTokenContent(config, `${name}_token`, source);
      if (content !== undefined) named[name] = content;
    }
    // The library reads the *_token fields as plain strings.
    const libraryConfig: TokenizerConfigJson = {
      ...config,
      ...Object.fromEntries(Object.entries(named).map(([name, content]) => [`${name}_token`, content])),
      clean_up_tokenization_spaces: config['clean_up_tokenization_spaces'] ?? false,
    };
    if (parsed.modelType === 'WordLevel' && named.unk === undefined && parsed.unkToken !== undefined) {
      libraryConfig['unk_token'] = parsed.unkToken;
    }
    // The library requires these keys to exist (null is fine), and iterates added_tokens.
    const libraryJson = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...parsed.root,
      added_tokens: parsed.root['added_tokens'] ?? [],
    };
    let inner: LibraryTokenizer;
    try {
      inner = new LibraryTokenizer(libraryJson, libraryConfig);
      // The library reads normalizer, pre-tokenizer and decoder settings on first use: a malformed
      // one (a Split whose behavior is not a string) would surface as a TypeError from inside the
      // first encode. One round trip here moves that to load time, with the file named.
      const probe = inner.encode(PROBE_TEXT, { add_special_tokens: false }).ids.filter((id) => typeof id === 'number');
      if (probe.length > 0) inner.decode(probe, { skip_special_tokens: false });
    } catch (error) {
      throw new Error(`${source}: @huggingface/tokenizers could not build this tokenizer: ${(error as Error).message}`, { cause: error });
    }
    const vocabSize = inner.model?.vocab.length ?? 0;
    return new HfTokenizer(source, structuredClone(parsed.root), inner, resolveSpecials(parsed, named, inner, source), vocabSize);
  }

  /** The id of a role, or undefined when the vocabulary has none (see the file header). */
  findSpecial(name: SpecialTokenName): number | undefined {
    return this.found[name];
  }

  private requireSpecial(name: SpecialTokenName): number {
    const id = this.found[name];
    if (id !== undefined) return id;
    const tried = SPECIAL_CANDIDATES[name].map((c) => JSON.stringify(c)).join(', ');
    const fallback = name === 'pad' ? ' and there is no eos or unk token to pad with' : '';
    throw new Error(
      `${this.source}: the tokenizer has no ${name} token: tokenizer_config.json names no ${name}_token, ` +
        `the vocabulary has none of ${tried}${fallback}; add one to added_tokens or name it in tokenizer_config.json`,
    );
  }

  /** A library call whose failure (a setting the load-time probe did not reach) names this file. */
  private library<T>(op: string, call: () => T): T {
    try {
      return call();
    } catch (error) {
      throw new Error(`${this.source}: ${op}: @huggingface/tokenizers failed: ${(error as Error).message}`, { cause: error });
    }
  }

  encode(text: string): number[] {
    if (typeof text !== 'string') throw new Error(`${this.source}: encode: text must be a string, got ${describeValue(text)}`);
    const { ids, tokens } = this.library('encode', () => this.inner.encode(text, { add_special_tokens: false }));
    ids.forEach((id, i) => {
      if (typeof id !== 'number') {
        throw new Error(
          `${this.source}: encode: the model produced token ${JSON.stringify(tokens[i])} for ${describeValue(text)}, which has no id ` +
            '(a piece outside the vocabulary, and no unk token in the vocabulary to stand in)',
        );
      }
    });
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    checkTokenIds(ids, this, `${this.source}: decode`);
    // The library rejects an empty id list; the empty sequence decodes to the empty string.
    if (ids.length === 0) return '';
    return this.library('decode', () => this.inner.decode([...ids], { skip_special_tokens: opts.skipSpecial ?? false }));
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.inner.id_to_token(id) : undefined;
  }

  /** A copy of the tokenizer.json this was built from. */
  toJSON(): object {
    return structuredClone(this.json);
  }
}

/** Steps 1-4 of the header for every role. */
function resolveSpecials(
  parsed: TokenizerJson,
  named: Partial<Record<SpecialTokenName, string>>,
  inner: LibraryTokenizer,
  source: string,
): Partial<Record<SpecialTokenName, number>> {
  const found: Partial<Record<SpecialTokenName, number>> = {};
  for (const name of SPECIAL_TOKEN_NAMES) {
    const content = named[name];
    if (content !== undefined) {
      const id = inner.token_to_id(content);
      if (id === undefined) {
        throw new Error(`${source}: tokenizer_config field "${name}_token" names ${JSON.stringify(content)}, which is not in the vocabulary`);
      }
      found[name] = id;
      continue;
    }
    const candidates = name === 'unk' && parsed.unkToken !== undefined ? [parsed.unkToken, ...SPECIAL_CANDIDATES.unk] : SPECIAL_CANDIDATES[name];
    for (const candidate of candidates) {
      const id = inner.token_to_id(candidate);
      if (id !== undefined) {
        found[name] = id;
        break;
      }
    }
  }
  found.pad ??= found.eos ?? found.unk;
  return found;
}
