/**
 * Structural validation of a Hugging Face `tokenizer.json` object, done before any tokenizer is
 * built so that a malformed file fails with its source and the offending field named
 * (`my.json: field "model.vocab" gives id 7 to both "a" and "b"`) rather than deep inside a model.
 *
 * Checked: the root is an object; `model` is an object whose `type` is one of the model types
 * Hugging Face serializes (BPE, WordPiece, Unigram, WordLevel); `model.vocab` maps tokens to
 * distinct non-negative integer ids (Unigram: an array of [piece, score] whose index is the id);
 * BPE `model.merges` is an array of "a b" strings or [a, b] pairs; a Unigram `model.unk_id` names a
 * vocabulary entry (the library hands it out unchecked for unknown pieces); `added_tokens` entries
 * have integer ids and string contents that agree with the vocabulary.
 *
 * Non-goals: validating normalizers, pre-tokenizers, post-processors and decoders (the library that
 * consumes them reports those; HfTokenizer.fromJSON makes it do so at load), and checking that
 * merges only name vocabulary tokens.
 */
import { describeValue } from './tokenizer.js';

export const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram', 'WordLevel'] as const;
export type ModelType = (typeof MODEL_TYPES)[number];

export interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  normalized: boolean | undefined;
  lstrip: boolean | undefined;
  rstrip: boolean | undefined;
  singleWord: boolean | undefined;
}

export interface TokenizerJson {
  /** The root object as given. */
  root: Record<string, unknown>;
  /** The `model` object as given. */
  model: Record<string, unknown>;
  modelType: ModelType;
  /** token → id from `model.vocab` (Unigram: piece → array index). */
  vocab: Map<string, number>;
  /** `model.unk_token` when present. */
  unkToken: string | undefined;
  /** `added_tokens`, [] when absent. */
  addedTokens: AddedTokenJson[];
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Validates the structure of a tokenizer.json object; `source` names it in every error. */
export function readTokenizerJson(json: unknown, source: string): TokenizerJson {
  if (!isPlainObject(json)) {
    throw new Error(`${source}: tokenizer.json must be a JSON object, got ${describeValue(json)}`);
  }
  const model = json['model'];
  if (model === undefined) throw new Error(`${source}: field "model" is missing`);
  if (!isPlainObject(model)) {
    throw new Error(`${source}: field "model" must be an object, got ${describeValue(model)}`);
  }
  const modelType = readModelType(model['type'], source);
  const vocab = modelType === 'Unigram' ? readUnigramVocab(model['vocab'], source) : readVocabMap(model['vocab'], source);
  if (modelType === 'BPE') checkMerges(model['merges'], source);
  if (modelType === 'Unigram') checkUnigramUnk(model['unk_id'], vocab.size, source);
  const unk = model['unk_token'];
  if (unk !== undefined && unk !== null && typeof unk !== 'string') {
    throw new Error(`${source}: field "model.unk_token" must be a string, got ${describeValue(unk)}`);
  }
  const addedTokens = readAddedTokens(json['added_tokens'], vocab, source);
  return { root: json, model, modelType, vocab, unkToken: typeof unk === 'string' ? unk : undefined, addedTokens };
}

function readModelType(type: unknown, source: string): ModelType {
  const expected = `expected one of ${MODEL_TYPES.join(', ')}`;
  if (type === undefined) throw new Error(`${source}: field "model.type" is missing; ${expected}`);
  if (typeof type !== 'string' || !(MODEL_TYPES as readonly string[]).includes(type)) {
    throw new Error(`${source}: field "model.type" is ${describeValue(type)}, an unknown model type; ${expected}`);
  }
  return type as ModelType;
}

function isTokenId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** `model.vocab` of BPE / WordPiece / WordLevel: an object token → id with distinct ids. */
function readVocabMap(vocab: unknown, source: string): Map<string, number> {
  if (!isPlainObject(vocab)) {
    throw new Error(`${source}: field "model.vocab" must be an object mapping tokens to ids, got ${describeValue(vocab)}`);
  }
  const byId = new Map<number, string>();
  const result = new Map<string, number>();
  for (const [token, id] of Object.entries(vocab)) {
    if (!isTokenId(id)) {
      throw new Error(
        `${source}: field "model.vocab" must map tokens to non-negative integer ids; token ${JSON.stringify(token)} has ${describeValue(id)}`,
      );
    }
    const other = byId.get(id);
    if (other !== undefined) {
      throw new Error(
        `${source}: field "model.vocab" gives id ${id} to both ${JSON.stringify(other)} and ${JSON.stringify(token)}`,
      );
    }
    byId.set(id, token);
    result.set(token, id);
  }
  return result;
}

/** `model.vocab` of Unigram: [[piece, logProb], ...]; the index is the id, pieces must be distinct. */
function readUnigramVocab(vocab: unknown, source: string): Map<string, number> {
  if (!Array.isArray(vocab)) {
    throw new Error(`${source}: field "model.vocab" of a Unigram model must be an array of [piece, score], got ${describeValue(vocab)}`);
  }
  const result = new Map<string, number>();
  vocab.forEach((entry: unknown, id) => {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') {
      throw new Error(`${source}: field "model.vocab[${id}]" must be [piece: string, score: number], got ${describeValue(entry)}`);
    }
    const piece: string = entry[0];
    const other = result.get(piece);
    if (other !== undefined) {
      throw new Error(`${source}: field "model.vocab" lists piece ${JSON.stringify(piece)} at both ids ${other} and ${id}`);
    }
    result.set(piece, id);
  });
  return result;
}

function checkUnigramUnk(unkId: unknown, size: number, source: string): void {
  if (unkId === undefined || unkId === null) return;
  if (!isTokenId(unkId) || unkId >= size) {
    throw new Error(`${source}: field "model.unk_id" must be the id of a "model.vocab" entry, an integer in [0, ${size}), got ${describeValue(unkId)}`);
  }
}

function checkMerges(merges: unknown, source: string): void {
  if (!Array.isArray(merges)) {
    throw new Error(`${source}: field "model.merges" of a BPE model must be an array, got ${describeValue(merges)}`);
  }
  merges.forEach((merge: unknown, i) => {
    const pair = typeof merge === 'string' ? merge.split(' ') : merge;
    const ok = Array.isArray(pair) && pair.length === 2 && pair.every((p) => typeof p === 'string' && p.length > 0);
    if (!ok) {
      throw new Error(`${source}: field "model.merges[${i}]" must be "left right" or [left, right], got ${describeValue(merge)}`);
    }
  });
}

function readOptionalBoolean(entry: Record<string, unknown>, key: string, field: string, source: string): boolean | undefined {
  const value = entry[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new Error(`${source}: field "${field}.${key}" must be a boolean, got ${describeValue(value)}`);
  return value;
}

/**
 * `added_tokens`: [{ id, content, special, normalized, lstrip, rstrip, single_word }]. An added token
 * may repeat a vocabulary entry (same content, same id) but may not take an id the vocabulary gives
 * to another token, nor share an id or content with another added token.
 */
function readAddedTokens(added: unknown, vocab: ReadonlyMap<string, number>, source: string): AddedTokenJson[] {
  if (added === undefined || added === null) return [];
  if (!Array.isArray(added)) {
    throw new Error(`${source}: field "added_tokens" must be an array, got ${describeValue(added)}`);
  }
  const vocabById = new Map<number, string>();
  for (const [token, id] of vocab) vocabById.set(id, token);
  const seenIds = new Map<number, string>();
  const seenContents = new Set<string>();
  return added.map((entry: unknown, i): AddedTokenJson => {
    const field = `added_tokens[${i}]`;
    if (!isPlainObject(entry)) throw new Error(`${source}: field "${field}" must be an object, got ${describeValue(entry)}`);
    const { id, content } = entry;
    if (!isTokenId(id)) throw new Error(`${source}: field "${field}.id" must be a non-negative integer, got ${describeValue(id)}`);
    if (typeof content !== 'string' || content.length === 0) {
      throw new Error(`${source}: field "${field}.content" must be a non-empty string, got ${describeValue(content)}`);
    }
    const vocabToken = vocabById.get(id);
    if (vocabToken !== undefined && vocabToken !== content) {
      throw new Error(
        `${source}: field "${field}" gives id ${id} to ${JSON.stringify(content)} but "model.vocab" gives it to ${JSON.stringify(vocabToken)}`,
      );
    }
    const vocabId = vocab.get(content);
    if (vocabId !== undefined && vocabId !== id) {
      throw new Error(`${source}: field "${field}" gives ${JSON.stringify(content)} id ${id} but "model.vocab" gives it id ${vocabId}`);
    }
    const previous = seenIds.get(id);
    if (previous !== undefined) {
      throw new Error(`${source}: field "${field}" gives id ${id} to ${JSON.stringify(content)}, already taken by added token ${JSON.stringify(previous)}`);
    }
    if (seenContents.has(content)) throw new Error(`${source}: field "${field}" repeats the added token ${JSON.stringify(content)}`);
    seenIds.set(id, content);
    seenContents.add(content);
    return {
      id,
      content,
      special: readOptionalBoolean(entry, 'special', field, source) ?? false,
      normalized: readOptionalBoolean(entry, 'normalized', field, source),
      lstrip: readOptionalBoolean(entry, 'lstrip', field, source),
      rstrip: readOptionalBoolean(entry, 'rstrip', field, source),
      singleWord: readOptionalBoolean(entry, 'single_word', field, source),
    };
  });
}
