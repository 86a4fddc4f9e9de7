/**
 * The tokenizer contract shared by keel's own word tokenizer (word.ts) and the wrapper over
 * Hugging Face tokenizer.json files (hf.ts): text ↔ token ids, the five special tokens the model
 * needs, and serialization to the Hugging Face `tokenizer.json` format.
 *
 * Legend: V = vocabulary size; every token id lies in [0, V).
 *
 * Contract:
 *  - `encode` never adds bos/eos: the caller builds sequences (`[bos, ...encode(q), eos]`) so that
 *    prompt templates live in one place (the data pipeline), not inside the tokenizer.
 *  - `<image>` written in the text encodes to `specials.image`: the model splices the projected
 *    image patches in at that position.
 *  - `decode` rejects ids that are not tokens of this vocabulary instead of printing a placeholder.
 *
 * Non-goals: batching, padding, truncation, offsets/attention masks, chat templates.
 */

/** The special tokens the model and the data pipeline refer to by role. */
export type SpecialTokenName = 'pad' | 'bos' | 'eos' | 'unk' | 'image';

/** Roles in the order keel's word tokenizer gives them ids 0..4. */
export const SPECIAL_TOKEN_NAMES: readonly SpecialTokenName[] = ['pad', 'bos', 'eos', 'unk', 'image'];

/** The literal strings keel writes for each role (in data, prompts and its own vocabularies). */
export const SPECIAL_TOKENS: Readonly<Record<SpecialTokenName, string>> = Object.freeze({
  pad: '<pad>',
  bos: '<bos>',
  eos: '<eos>',
  unk: '<unk>',
  image: '<image>',
});

/** Ids of the special tokens, by role. */
export type SpecialTokenIds = Readonly<Record<SpecialTokenName, number>>;

export interface DecodeOptions {
  /** Drop special tokens (pad, bos, eos, unk, image and any other token marked special). */
  skipSpecial?: boolean;
}

export interface Tokenizer {
  /** V: one more than the largest token id. */
  readonly vocabSize: number;
  /** Text → ids, without bos/eos. */
  encode(text: string): number[];
  /** Ids → text; throws on an id that is not a token of this vocabulary. */
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** Exact vocabulary lookup (no normalization); undefined when absent. */
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Ids of the special tokens; reading a role the vocabulary lacks throws, naming the role. */
  readonly specials: SpecialTokenIds;
  /** A Hugging Face tokenizer.json object describing this tokenizer. */
  toJSON(): object;
}

/**
 * Throws unless every id is an integer naming a token of `tokenizer` (holes in a sparse vocabulary
 * count as invalid). `context` prefixes the message, e.g. 'WordTokenizer.decode'.
 */
export function checkTokenIds(
  ids: readonly number[],
  tokenizer: Pick<Tokenizer, 'vocabSize' | 'idToToken'>,
  context: string,
): void {
  if (!Array.isArray(ids)) {
    throw new Error(`${context}: ids must be an array of token ids, got ${describeValue(ids)}`);
  }
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= tokenizer.vocabSize) {
      throw new Error(
        `${context}: ids[${i}] = ${describeValue(id)} is not a token id; expected an integer in [0, ${tokenizer.vocabSize})`,
      );
    }
    if (tokenizer.idToToken(id) === undefined) {
      throw new Error(`${context}: ids[${i}] = ${id} is not assigned to any token in this vocabulary`);
    }
  }
}

/** A short, printable description of an arbitrary value for error messages. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}
