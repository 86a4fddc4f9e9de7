/**
 * WordTokenizer: id order, word validation, encode/decode, and agreement of `toJSON` with
 * @huggingface/tokenizers on many strings (the compatibility promise of word.ts).
 */
import { Tokenizer as LibraryTokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { Rng } from '../data/prng.js';
import { WordTokenizer } from './word.js';

const WORDS = ['what', 'is', 'this', 'the', 'cat', 'color', 'red', 'a', 'square', '?', '.', ',', '!', 'constructor', '__proto__', 'über', '1'];
const tok = WordTokenizer.fromWords(WORDS);
const id = (word: string): number => {
  const found = tok.tokenToId(word);
  if (found === undefined) throw new Error(`test vocabulary lacks ${word}`);
  return found;
};

describe('WordTokenizer.fromWords', () => {
  it('puts the specials at 0..4, then the distinct words in code-unit order', () => {
    const t = WordTokenizer.fromWords(['zebra', 'apple', 'Ä'.toLowerCase(), 'apple', '?', '<image>']);
    expect(t.vocab).toEqual(['<pad>', '<bos>', '<eos>', '<unk>', '<image>', '?', 'apple', 'zebra', 'ä']);
    expect(t.vocabSize).toBe(9);
    expect(t.specials).toEqual({ pad: 0, bos: 1, eos: 2, unk: 3, image: 4 });
  });

  it('gives the same ids and the same JSON for any input order', () => {
    const rng = new Rng(7);
    const reference = JSON.stringify(tok.toJSON());
    for (let trial = 0; trial < 5; trial++) {
      const shuffled = rng.shuffle([...WORDS, ...rng.shuffle(WORDS).slice(0, 5)]);
      const again = WordTokenizer.fromWords(new Set(shuffled));
      expect(again.vocab).toEqual(tok.vocab);
      expect(JSON.stringify(again.toJSON())).toBe(reference);
    }
  });

  it.each([
    ['', /words\[1\] is empty/],
    ['two words', /words\[1\] = "two words" contains whitespace/],
    ['tab\there', /contains whitespace/],
    ['Cat', /"Cat" is not lowercase.*use "cat"/],
    ['end.', /"end\." mixes punctuation.*\["end","\."\]/],
    ['a<pad>', /contains the special token <pad>/],
  ])('rejects the word %j', (word, message) => {
    expect(() => WordTokenizer.fromWords(['ok', word])).toThrow(message);
  });

  it('rejects non-strings and a bare string', () => {
    expect(() => WordTokenizer.fromWords(['ok', 3 as unknown as string])).toThrow(/words\[1\] must be a string, got number 3/);
    expect(() => WordTokenizer.fromWords('cat')).toThrow(/iterable of strings \(not one string\)/);
  });
});

describe('WordTokenizer.encode / decode', () => {
  it('lowercases, splits on whitespace and cuts punctuation out', () => {
    expect(tok.encode('What is\tthis?')).toEqual([id('what'), id('is'), id('this'), id('?')]);
    expect(tok.encode('  a,red  square!.\n')).toEqual([id('a'), id(','), id('red'), id('square'), id('!'), id('.')]);
    expect(tok.encode('')).toEqual([]);
    expect(tok.encode(' \n\t ')).toEqual([]);
  });

  it('maps unknown words to <unk>, including object-prototype names not in the vocabulary', () => {
    expect(tok.encode('the dog ?')).toEqual([id('the'), 3, id('?')]);
    expect(tok.encode('toString hasOwnProperty')).toEqual([3, 3]);
    expect(tok.encode('constructor __proto__')).toEqual([id('constructor'), id('__proto__')]);
  });

  it('recognizes special tokens literally, even inside words, and does not add bos/eos', () => {
    expect(tok.encode('<image> what color?')).toEqual([4, id('what'), id('color'), id('?')]);
    expect(tok.encode('a<image>cat')).toEqual([id('a'), 4, id('cat')]);
    expect(tok.encode('<bos><unk><eos><pad>')).toEqual([1, 3, 2, 0]);
    // Lowercasing "<IMAGE>" yields a vocabulary entry, exactly as in Hugging Face's pipeline.
    expect(tok.encode('<IMAGE> Cat')).toEqual([4, id('cat')]);
    expect(tok.encode('<image')).toEqual([3]);
  });

  it('round-trips text written in vocabulary words, one space apart', () => {
    for (const text of ['what is this ?', '<image> what color is the cat ?', 'a red square , a cat !']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
    expect(tok.decode(tok.encode('What  is THIS?'))).toBe('what is this ?');
    expect(tok.decode(tok.encode('the dog'))).toBe('the <unk>');
  });

  it('skips specials on request and decodes the empty sequence', () => {
    const ids = [1, 4, id('the'), id('cat'), 2, 0, 0];
    expect(tok.decode(ids)).toBe('<bos> <image> the cat <eos> <pad> <pad>');
    expect(tok.decode(ids, { skipSpecial: true })).toBe('the cat');
    expect(tok.decode([])).toBe('');
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([0, tok.vocabSize])).toThrow(`WordTokenizer.decode: ids[1] = number ${tok.vocabSize} is not a token id; expected an integer in [0, ${tok.vocabSize})`);
    expect(() => tok.decode([-1])).toThrow(/ids\[0\] = number -1/);
    expect(() => tok.decode([1.5])).toThrow(/ids\[0\] = number 1.5/);
  });

  it('looks tokens and ids up exactly', () => {
    expect(tok.tokenToId('cat')).toBe(id('cat'));
    expect(tok.tokenToId('Cat')).toBeUndefined();
    expect(tok.tokenToId('toString')).toBeUndefined();
    expect(tok.idToToken(4)).toBe('<image>');
    expect(tok.idToToken(tok.vocabSize)).toBeUndefined();
    expect(tok.idToToken(-1)).toBeUndefined();
  });
});

/** Random text mixing vocabulary words, unknown words, case, punctuation, specials and odd whitespace. */
function randomText(rng: Rng): string {
  const pieces = [
    ...WORDS, 'What', 'IS', 'Über', 'ÜBER', 'dog', 'İstanbul', 'ΣΟΦΟΣ', '日本', 'can\'t', 'x-ray', ':', ';', '?!', '...',
    '<image>', '<IMAGE>', '<bos>', '<eos>', '<pad>', '<unk>', '<image', 'image>', 'toString', 'hasOwnProperty', '12', '1.5',
  ];
  const gaps = [' ', ' ', ' ', '', '  ', '\t', '\n', '\u00a0', '\u0085', '\ufeff', '\u2003', '\r\n'];
  let text = rng.pick(['', ' ', '\n']);
  const n = rng.int(0, 12);
  for (let i = 0; i < n; i++) text += rng.pick(pieces) + rng.pick(gaps);
  return text;
}

describe('WordTokenizer.toJSON and @huggingface/tokenizers', () => {
  const json = JSON.parse(JSON.stringify(tok.toJSON())) as object;
  // The library's WordLevel fallback takes unk from the config; clean-up would rewrite " ?" to "?".
  const library = new LibraryTokenizer(json, { unk_token: '<unk>', clean_up_tokenization_spaces: false });

  it('writes a WordLevel model with the specials as added tokens', () => {
    expect(json).toMatchObject({
      model: { type: 'WordLevel', unk_token: '<unk>' },
      normalizer: { type: 'Lowercase' },
      decoder: null,
      added_tokens: [
        { id: 0, content: '<pad>', special: true, normalized: false },
        { id: 1, content: '<bos>', special: true },
        { id: 2, content: '<eos>', special: true },
        { id: 3, content: '<unk>', special: true },
        { id: 4, content: '<image>', special: true },
      ],
    });
    expect(Object.keys((json as { model: { vocab: object } }).model.vocab)).toHaveLength(tok.vocabSize);
  });

  it('gives identical ids and decoded text on hand-picked and 400 random strings', () => {
    const rng = new Rng(2024);
    const texts = [
      'What is this?', 'a<image>cat', '<IMAGE>', 'ÜBER über', 'dog?!...', 'x\u0085y\ufeffz', 'constructor', '__proto__ toString',
      ...Array.from({ length: 400 }, () => randomText(rng)),
    ];
    let unknown = 0;
    for (const text of texts) {
      const ids = tok.encode(text);
      expect(library.encode(text, { add_special_tokens: false }).ids, JSON.stringify(text)).toEqual(ids);
      if (ids.length > 0) {
        expect(library.decode(ids)).toBe(tok.decode(ids));
        expect(library.decode(ids, { skip_special_tokens: true })).toBe(tok.decode(ids, { skipSpecial: true }));
      }
      unknown += ids.filter((i) => i === 3).length;
    }
    expect(unknown).toBeGreaterThan(50);
  });

  it('documents the library gap: without unk_token in the config, unknown words get no id', () => {
    const bare = new LibraryTokenizer(json, {});
    expect(bare.encode('the dog', { add_special_tokens: false }).ids).toEqual([id('the'), undefined]);
  });

  it('reads its own JSON back to the same tokenizer', () => {
    const back = WordTokenizer.fromJSON(json, 'words.json');
    expect(back.vocab).toEqual(tok.vocab);
    expect(back.encode('What is this <image>?')).toEqual(tok.encode('What is this <image>?'));
  });
});

describe('WordTokenizer.fromJSON errors', () => {
  const base = (): Record<string, any> => JSON.parse(JSON.stringify(tok.toJSON())) as Record<string, any>;

  it('rejects a file with another pre-tokenizer', () => {
    const json = base();
    json['pre_tokenizer'] = { type: 'Whitespace' };
    expect(() => WordTokenizer.fromJSON(json, 'w.json')).toThrow(/w\.json: not a keel WordTokenizer file: field "pre_tokenizer"/);
  });

  it('rejects specials away from ids 0..4', () => {
    const json = base();
    json['model'].vocab['<pad>'] = tok.vocabSize;
    json['model'].vocab['what'] = 0;
    json['added_tokens'][0].id = tok.vocabSize;
    expect(() => WordTokenizer.fromJSON(json, 'w.json')).toThrow(/ids must be 0\.\.\d+ without gaps; "<pad>" has/);
    json['model'].vocab['<pad>'] = id('what');
    json['added_tokens'][0].id = id('what');
    expect(() => WordTokenizer.fromJSON(json, 'w.json')).toThrow(/must give id 0 to <pad>, but gives it to "what"/);
  });

  it('rejects a vocabulary word the encoder could never produce', () => {
    const json = base();
    json['model'].vocab['Upper'] = tok.vocabSize;
    expect(() => WordTokenizer.fromJSON(json, 'w.json')).toThrow(/"Upper" is not lowercase/);
  });

  it('rejects normalized or missing special added tokens', () => {
    const json = base();
    json['added_tokens'][4].normalized = true;
    expect(() => WordTokenizer.fromJSON(json, 'w.json')).toThrow(/added_tokens\[4\].*"<image>"/);
    json['added_tokens'].pop();
    expect(() => WordTokenizer.fromJSON(json, 'w.json')).toThrow(/must list exactly the 5 specials/);
  });

  it('rejects another unk token', () => {
    const json = base();
    json['model'].unk_token = 'what';
    expect(() => WordTokenizer.fromJSON(json, 'w.json')).toThrow(/"model\.unk_token" must be "<unk>", got "what"/);
  });
});
