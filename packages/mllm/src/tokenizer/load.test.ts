/**
 * parseTokenizerJson: which class each file becomes, and one test per kind of malformed input,
 * each checking that the message names the source and the field.
 */
import { describe, expect, it } from 'vitest';
import { HfTokenizer } from './hf.js';
import { parseTokenizerJson } from './load.js';
import { WordTokenizer } from './word.js';

const words = WordTokenizer.fromWords(['what', 'is', 'this', '?']);

/** A valid minimal BPE file; each error test breaks one field of a fresh copy. */
function bpeJson(): Record<string, any> {
  return {
    added_tokens: [{ id: 3, content: '</s>', special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: null,
    model: { type: 'BPE', unk_token: null, vocab: { a: 0, b: 1, ab: 2, '</s>': 3 }, merges: ['a b'] },
  };
}

describe('parseTokenizerJson dispatch', () => {
  it('reads our WordLevel file as a WordTokenizer', () => {
    const tok = parseTokenizerJson(JSON.parse(JSON.stringify(words.toJSON())), 'words.json');
    expect(tok).toBeInstanceOf(WordTokenizer);
    expect(tok.encode('What is <image>?')).toEqual(words.encode('What is <image>?'));
  });

  it('reads a BPE file as an HfTokenizer', () => {
    const tok = parseTokenizerJson(bpeJson(), 'bpe.json');
    expect(tok).toBeInstanceOf(HfTokenizer);
    expect(tok.encode('ab a b')).toEqual([2, 0, 1]);
    expect(tok.specials.eos).toBe(3);
  });

  it('reads a WordLevel file with another pre-tokenizer as an HfTokenizer', () => {
    const json = JSON.parse(JSON.stringify(words.toJSON())) as Record<string, unknown>;
    json['pre_tokenizer'] = { type: 'WhitespaceSplit' };
    const tok = parseTokenizerJson(json, 'foreign.json');
    expect(tok).toBeInstanceOf(HfTokenizer);
    // "this?" stays one piece here, unknown, while our pre-tokenizer would split it.
    expect(tok.encode('what this?')).toEqual([words.tokenToId('what'), words.specials.unk]);
  });

  it('passes tokenizer_config.json through to the HfTokenizer', () => {
    const tok = parseTokenizerJson(bpeJson(), 'bpe.json', { bos_token: 'ab' });
    expect(tok.specials.bos).toBe(2);
  });
});

describe('parseTokenizerJson errors', () => {
  const parse = (json: unknown) => () => parseTokenizerJson(json, 'ckpt/tokenizer.json');

  it('rejects a root that is not an object', () => {
    expect(parse(null)).toThrow('ckpt/tokenizer.json: tokenizer.json must be a JSON object, got null');
    expect(parse([])).toThrow('ckpt/tokenizer.json: tokenizer.json must be a JSON object, got an array of length 0');
    expect(parse('{"model":{}}')).toThrow(/must be a JSON object, got "\{/);
  });

  it('rejects a missing model', () => {
    const json = bpeJson();
    delete json['model'];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model" is missing');
  });

  it('rejects a model that is not an object', () => {
    expect(parse({ ...bpeJson(), model: 'BPE' })).toThrow('ckpt/tokenizer.json: field "model" must be an object, got "BPE"');
  });

  it('rejects a missing model type', () => {
    const json = bpeJson();
    delete json['model'].type;
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model.type" is missing; expected one of BPE, WordPiece, Unigram, WordLevel');
  });

  it('rejects an unknown model type', () => {
    const json = bpeJson();
    json['model'].type = 'CharLevel';
    expect(parse(json)).toThrow(/field "model\.type" is "CharLevel", an unknown model type; expected one of BPE, WordPiece, Unigram, WordLevel/);
  });

  it('rejects a vocab that is not a map', () => {
    const json = bpeJson();
    json['model'].vocab = ['a', 'b'];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model.vocab" must be an object mapping tokens to ids, got an array of length 2');
  });

  it.each([
    [1.5, 'number 1.5'],
    ['3', '"3"'],
    [-1, 'number -1'],
    [null, 'null'],
  ])('rejects the vocab id %j', (bad, shown) => {
    const json = bpeJson();
    json['model'].vocab['b'] = bad;
    expect(parse(json)).toThrow(`ckpt/tokenizer.json: field "model.vocab" must map tokens to non-negative integer ids; token "b" has ${shown}`);
  });

  it('rejects duplicate vocab ids', () => {
    const json = bpeJson();
    json['model'].vocab['b'] = 0;
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model.vocab" gives id 0 to both "a" and "b"');
  });

  it('rejects a Unigram vocab entry that is not [piece, score], and repeated pieces', () => {
    const json = { model: { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0], ['a', -1], ['b']] } };
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model.vocab[2]" must be [piece: string, score: number], got an array of length 1');
    json.model.vocab[2] = ['a', -2];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model.vocab" lists piece "a" at both ids 1 and 2');
  });

  it('rejects BPE merges that are missing or malformed', () => {
    const json = bpeJson();
    json['model'].merges = ['a b', 'ab'];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model.merges[1]" must be "left right" or [left, right], got "ab"');
    delete json['model'].merges;
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model.merges" of a BPE model must be an array, got undefined');
  });

  it('rejects added_tokens that are not an array of {id, content}', () => {
    const json = bpeJson();
    json['added_tokens'] = { '</s>': 3 };
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "added_tokens" must be an array, got an object');
    json['added_tokens'] = [{ id: 'x', content: '</s>' }];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "added_tokens[0].id" must be a non-negative integer, got "x"');
    json['added_tokens'] = [{ id: 4, content: '' }];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "added_tokens[0].content" must be a non-empty string, got ""');
    json['added_tokens'] = [{ id: 4, content: '<x>', special: 'yes' }];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "added_tokens[0].special" must be a boolean, got "yes"');
  });

  it('rejects an added token that takes another token\'s id', () => {
    const json = bpeJson();
    json['added_tokens'] = [{ id: 1, content: '<s>', special: true }];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "added_tokens[0]" gives id 1 to "<s>" but "model.vocab" gives it to "b"');
    json['added_tokens'] = [{ id: 4, content: '</s>', special: true }];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "added_tokens[0]" gives "</s>" id 4 but "model.vocab" gives it id 3');
    json['added_tokens'] = [{ id: 4, content: '<s>' }, { id: 4, content: '<t>' }];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "added_tokens[1]" gives id 4 to "<t>", already taken by added token "<s>"');
    json['added_tokens'] = [{ id: 4, content: '<s>' }, { id: 5, content: '<s>' }];
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "added_tokens[1]" repeats the added token "<s>"');
  });

  it('rejects a non-string unk_token', () => {
    const json = bpeJson();
    json['model'].unk_token = 0;
    expect(parse(json)).toThrow('ckpt/tokenizer.json: field "model.unk_token" must be a string, got number 0');
  });
});
