/**
 * WordTokenizer: the bundled model's tokenizer. One token per lowercased word, with `? . , !` as
 * tokens of their own, the five specials (`<pad> <bos> <eos> <unk> <image>`, ids 0..4) recognized
 * literally, and every other word mapped to `<unk>`. Ids: specials, then the words sorted by UTF-16
 * code units, so the same word set always gives the same ids.
 *
 * Legend: V = vocabulary size = 5 specials + number of words.
 *
 * Encoding, step by step (the order Hugging Face tokenizers apply, so both agree on every input):
 *   1. split the raw text on literal special tokens (leftmost, then longest match): "<image>" → 4;
 *   2. lowercase each remaining section (the `Lowercase` normalizer);
 *   3. split it on runs of Unicode White_Space, dropping them (`Split` /\s+/ "Removed"), then cut
 *      out each of ? . , ! (`Split` /[?.,!]/ "Isolated");
 *   4. look each piece up in the vocabulary (specials included, so "<IMAGE>" also gives 4), else 3.
 * `decode` joins tokens with single spaces: "what is this ?" round-trips as written.
 *
 * tokenizer.json compatibility (`toJSON`): model "WordLevel" with vocab and unk_token, normalizer
 * Lowercase, the pre-tokenizer Sequence above, the specials as added_tokens (special, not
 * normalized), no decoder (Hugging Face then joins tokens with " ") and no post-processor. The Rust
 * library reads that file as is. @huggingface/tokenizers 0.2.0 (the JS port) has gaps, which is
 * why load.ts reads our file with this class instead of the library:
 *   - it has no WordLevel model: a vocab object without merges falls back to its "Legacy" model,
 *     which ignores `model.unk_token` and takes the unk token from tokenizer_config.json's
 *     `unk_token`; without that, unknown words encode to `undefined`;
 *   - its decode applies `clean_up_tokenization_spaces` (default true), turning "this ?" into
 *     "this?"; tokenizer_config.json must set it to false to match `decode` here.
 * With config { unk_token: '<unk>', clean_up_tokenization_spaces: false } it gives the ids and the
 * text of this class (word.test.ts checks it on many strings).
 *
 * Non-goals: subwords, stemming, unicode normalization beyond lowercasing, detokenization rules
 * (no spacing fix-ups around punctuation).
 */
import { isPlainObject, readTokenizerJson } from './schema.js';
import {
  SPECIAL_TOKEN_NAMES,
  SPECIAL_TOKENS,
  checkTokenIds,
  describeValue,
  type DecodeOptions,
  type SpecialTokenIds,
  type Tokenizer,
} from './tokenizer.js';

/** Oniguruma's \s (used by the Rust library, emulated by the JS port) is Unicode White_Space. */
const WHITESPACE = /\p{White_Space}+/u;
/** Each of these is a token on its own. */
const PUNCTUATION = /([?.,!])/u;

/** The special strings in id order: SPECIAL_LIST[i] has id i. */
const SPECIAL_LIST: readonly string[] = SPECIAL_TOKEN_NAMES.map((name) => SPECIAL_TOKENS[name]);
const SPECIAL_IDS: SpecialTokenIds = Object.freeze(
  Object.fromEntries(SPECIAL_TOKEN_NAMES.map((name, id) => [name, id])) as Record<keyof SpecialTokenIds, number>,
);
const UNK_ID = SPECIAL_IDS.unk;

export const WORD_NORMALIZER = { type: 'Lowercase' } as const;
export const WORD_PRE_TOKENIZER = {
  type: 'Sequence',
  pretokenizers: [
    { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'Removed', invert: false },
    { type: 'Split', pattern: { Regex: '[?.,!]' }, behavior: 'Isolated', invert: false },
  ],
} as const;

/** Step 3 of the encoding: lowercased text → word and punctuation pieces. */
function preTokenize(normalized: string): string[] {
  const pieces: string[] = [];
  for (const word of normalized.split(WHITESPACE)) {
    for (const piece of word.split(PUNCTUATION)) if (piece.length > 0) pieces.push(piece);
  }
  return pieces;
}

/** Step 1: raw text → sections, each a special token id or plain text (leftmost-longest matching). */
function splitOnSpecials(text: string): Array<number | string> {
  const sections: Array<number | string> = [];
  let start = 0;
  for (let i = 0; i < text.length; ) {
    let match = -1;
    for (let id = 0; id < SPECIAL_LIST.length; id++) {
      const special = SPECIAL_LIST[id]!;
      if (text.startsWith(special, i) && (match < 0 || special.length > SPECIAL_LIST[match]!.length)) match = id;
    }
    if (match < 0) {
      i++;
      continue;
    }
    if (i > start) sections.push(text.slice(start, i));
    sections.push(match);
    i += SPECIAL_LIST[match]!.length;
    start = i;
  }
  if (start < text.length) sections.push(text.slice(start));
  return sections;
}

/**
 * Throws unless `word` is a token the encoder can produce: a non-empty lowercase string with no
 * whitespace, either a single punctuation mark or free of them, and not containing a special token
 * (which step 1 would cut out). Returns true when the word is itself a special token.
 */
function checkWord(word: unknown, where: string): boolean {
  if (typeof word !== 'string') throw new Error(`${where} must be a string, got ${describeValue(word)}`);
  if (SPECIAL_LIST.includes(word)) return true;
  const quoted = JSON.stringify(word);
  if (word.length === 0) throw new Error(`${where} is empty; words must be non-empty`);
  if (WHITESPACE.test(word)) throw new Error(`${where} = ${quoted} contains whitespace; a word is one token`);
  if (word !== word.toLowerCase()) {
    throw new Error(
      `${where} = ${quoted} is not lowercase; text is lowercased before lookup, so use ${JSON.stringify(word.toLowerCase())}`,
    );
  }
  const pieces = preTokenize(word);
  if (pieces.length !== 1) {
    throw new Error(`${where} = ${quoted} mixes punctuation (? . , !) with other characters; it would split into ${JSON.stringify(pieces)}`);
  }
  const inner = SPECIAL_LIST.find((special) => word.includes(special));
  if (inner !== undefined) throw new Error(`${where} = ${quoted} contains the special token ${inner}, which is always split out`);
  return false;
}

/** Structural equality of JSON values (key order ignored). */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
}

/**
 * Why `json` is not a WordTokenizer file (the first differing field), or undefined when it is one:
 * a WordLevel model with exactly our normalizer and pre-tokenizer and no decoder/post-processor.
 */
export function wordTokenizerMismatch(json: unknown): string | undefined {
  if (!isPlainObject(json)) return 'the root is not an object';
  const model = json['model'];
  if (!isPlainObject(model) || model['type'] !== 'WordLevel') return 'field "model.type" is not "WordLevel"';
  if (!jsonEqual(json['normalizer'], WORD_NORMALIZER)) return `field "normalizer" is not ${JSON.stringify(WORD_NORMALIZER)}`;
  if (!jsonEqual(json['pre_tokenizer'], WORD_PRE_TOKENIZER)) {
    return `field "pre_tokenizer" is not ${JSON.stringify(WORD_PRE_TOKENIZER)}`;
  }
  for (const field of ['decoder', 'post_processor']) {
    if (json[field] !== undefined && json[field] !== null) return `field "${field}" is not null`;
  }
  return undefined;
}

export class WordTokenizer implements Tokenizer {
  /** vocab[id] = token; specials at 0..4. */
  readonly vocab: readonly string[];
  readonly vocabSize: number;
  readonly specials: SpecialTokenIds = SPECIAL_IDS;
  private readonly ids: ReadonlyMap<string, number>;

  /** `vocab` must already be valid: specials at 0..4, distinct encodable words after them. */
  private constructor(vocab: readonly string[]) {
    this.vocab = Object.freeze([...vocab]);
    this.vocabSize = vocab.length;
    this.ids = new Map(vocab.map((token, id) => [token, id]));
  }

  /** Specials, then the distinct words sorted by UTF-16 code units; throws on a word it could never produce. */
  static fromWords(words: Iterable<string>): WordTokenizer {
    if (typeof words === 'string' || words === null || typeof words !== 'object' || !(Symbol.iterator in words)) {
      throw new Error(`WordTokenizer.fromWords: words must be an iterable of strings (not one string), got ${describeValue(words)}`);
    }
    const unique = new Set<string>();
    let index = 0;
    for (const word of words) {
      if (!checkWord(word, `WordTokenizer.fromWords: words[${index}]`)) unique.add(word);
      index++;
    }
    const sorted = [...unique].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return new WordTokenizer([...SPECIAL_LIST, ...sorted]);
  }

  /** Reads a file written by `toJSON` (or an equivalent one); `source` names it in errors. */
  static fromJSON(json: unknown, source: string): WordTokenizer {
    const parsed = readTokenizerJson(json, source);
    const mismatch = wordTokenizerMismatch(json);
    if (mismatch !== undefined) throw new Error(`${source}: not a keel WordTokenizer file: ${mismatch}`);
    if (parsed.unkToken !== SPECIAL_TOKENS.unk) {
      throw new Error(`${source}: field "model.unk_token" must be "${SPECIAL_TOKENS.unk}", got ${describeValue(parsed.unkToken)}`);
    }
    const vocab: string[] = new Array<string>(parsed.vocab.size);
    for (const [token, id] of parsed.vocab) {
      if (id >= parsed.vocab.size) {
        throw new Error(`${source}: field "model.vocab" ids must be 0..${parsed.vocab.size - 1} without gaps; ${JSON.stringify(token)} has ${id}`);
      }
      vocab[id] = token;
    }
    SPECIAL_LIST.forEach((special, id) => {
      if (vocab[id] !== special) {
        throw new Error(`${source}: field "model.vocab" must give id ${id} to ${special}, but gives it to ${describeValue(vocab[id])}`);
      }
    });
    // Vocab keys are distinct and the specials hold 0..4, so checkWord only rejects unreachable words here.
    for (let id = SPECIAL_LIST.length; id < vocab.length; id++) checkWord(vocab[id], `${source}: field "model.vocab" token ${id}`);
    if (parsed.addedTokens.length !== SPECIAL_LIST.length) {
      throw new Error(`${source}: field "added_tokens" must list exactly the ${SPECIAL_LIST.length} specials ${SPECIAL_LIST.join(' ')}, got ${parsed.addedTokens.length} entries`);
    }
    parsed.addedTokens.forEach((added, i) => {
      const expected = SPECIAL_LIST[added.id];
      const literal = !added.normalized && !added.lstrip && !added.rstrip && !added.singleWord;
      if (expected !== added.content || !added.special || !literal) {
        throw new Error(
          `${source}: field "added_tokens[${i}]" (${JSON.stringify(added.content)}, id ${added.id}) must be one of the specials at its vocab id with special: true and normalized/lstrip/rstrip/single_word false`,
        );
      }
    });
    return new WordTokenizer(vocab);
  }

  encode(text: string): number[] {
    if (typeof text !== 'string') throw new Error(`WordTokenizer.encode: text must be a string, got ${describeValue(text)}`);
    const ids: number[] = [];
    for (const section of splitOnSpecials(text)) {
      if (typeof section === 'number') {
        ids.push(section);
        continue;
      }
      for (const piece of preTokenize(section.toLowerCase())) ids.push(this.ids.get(piece) ?? UNK_ID);
    }
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    checkTokenIds(ids, this, 'WordTokenizer.decode');
    const kept = opts.skipSpecial ? ids.filter((id) => id >= SPECIAL_LIST.length) : ids;
    return kept.map((id) => this.vocab[id]).join(' ');
  }

  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.vocab[id] : undefined;
  }

  toJSON(): object {
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: SPECIAL_LIST.map((content, id) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: structuredClone(WORD_NORMALIZER),
      pre_tokenizer: structuredClone(WORD_PRE_TOKENIZER),
      post_processor: null,
      decoder: null,
      // fromEntries defines own properties, so words such as "__proto__" stay ordinary keys.
      model: { type: 'WordLevel', vocab: Object.fromEntries(this.vocab.map((token, id) => [token, id])), unk_token: SPECIAL_TOKENS.unk },
    };
  }
}
