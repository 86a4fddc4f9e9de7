/**
 * HfTokenizer on two hand-written BPE tokenizer.json files whose ids are derived by hand from the
 * merge ranks: a GPT-2-style byte-level one and a SentencePiece-style (Metaspace, unk) one.
 */
import { describe, expect, it } from 'vitest';
import { HfTokenizer } from './hf.js';

const specialEntry = ([content, id]: [string, number]) => ({
  id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
});

/**
 * Byte-level: " world" is pre-tokenized to "Ġworld". Merge ranks 0..8 below; applying the lowest
 * rank first, "hello" → he·l·l·o → he·ll·o → hell·o → hello (11) and "Ġworld" → Ġw·o·r·l·d →
 * Ġw·or·l·d → Ġwor·l·d → Ġwor·ld → Ġworld (16).
 */
function byteLevelJson(): Record<string, unknown> {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ([['<s>', 18], ['</s>', 19], ['<pad>', 20], ['<image>', 21]] as [string, number][]).map(specialEntry),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    // Prepends <s> when asked to add specials: HfTokenizer.encode must not ask.
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [18], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab: {
        d: 0, e: 1, h: 2, l: 3, o: 4, r: 5, w: 6, 'Ġ': 7, he: 8, ll: 9, hell: 10, hello: 11,
        'Ġw': 12, or: 13, 'Ġwor': 14, ld: 15, 'Ġworld': 16, '!': 17,
      },
      merges: ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġwor ld'],
    },
  };
}

/**
 * Metaspace: "a cat" → "▁a▁cat"; ranks ▁c(0) at(1) ▁cat(2) ▁a(3) give ▁a·▁cat = [10, 9]. Unknown
 * characters become <unk> (0), consecutive ones fused into one. No <pad>, no <image>.
 */
function metaspaceJson(): Record<string, unknown> {
  return {
    version: '1.0',
    added_tokens: ([['<unk>', 0], ['<s>', 1], ['</s>', 2]] as [string, number][]).map(specialEntry),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: null,
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: {
      type: 'BPE', unk_token: '<unk>', fuse_unk: true, byte_fallback: false,
      vocab: { '<unk>': 0, '<s>': 1, '</s>': 2, '▁': 3, a: 4, c: 5, t: 6, '▁c': 7, at: 8, '▁cat': 9, '▁a': 10 },
      merges: [['▁', 'c'], ['a', 't'], ['▁c', 'at'], ['▁', 'a']],
    },
  };
}

describe('HfTokenizer, byte-level BPE', () => {
  const tok = HfTokenizer.fromJSON(byteLevelJson(), 'bytes.json');

  it('encodes by merge rank without adding bos', () => {
    expect(tok.encode('hello world!')).toEqual([11, 16, 17]);
    expect(tok.encode('hold')).toEqual([2, 4, 15]); // only l·d merges
    expect(tok.encode('world')).toEqual([6, 13, 15]); // no Ġ, so w·or·ld
    expect(tok.encode('')).toEqual([]);
  });

  it('splits out <image> and round-trips through the byte-level decoder', () => {
    expect(tok.encode('<image> hello')).toEqual([21, 7, 11]);
    for (const text of ['hello world!', '<image> hello world', 'world hold!']) expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.decode([18, 21, 7, 11, 19], { skipSpecial: true })).toBe(' hello');
    expect(tok.decode([])).toBe('');
  });

  it('resolves the specials from added_tokens and reports the missing unk by name', () => {
    expect({ bos: tok.specials.bos, eos: tok.specials.eos, pad: tok.specials.pad, image: tok.specials.image }).toEqual({
      bos: 18, eos: 19, pad: 20, image: 21,
    });
    expect(tok.findSpecial('unk')).toBeUndefined();
    expect(() => tok.specials.unk).toThrow(/bytes\.json: the tokenizer has no unk token: .*"<unk>", "\[UNK\]"/);
  });

  it('sizes the vocabulary over model and added tokens and looks tokens up', () => {
    expect(tok.vocabSize).toBe(22);
    expect(tok.tokenToId('Ġworld')).toBe(16);
    expect(tok.tokenToId('<image>')).toBe(21);
    expect(tok.idToToken(11)).toBe('hello');
    expect(tok.idToToken(22)).toBeUndefined();
  });

  it('rejects ids outside the vocabulary', () => {
    expect(() => tok.decode([11, 22])).toThrow(/bytes\.json: decode: ids\[1\] = number 22 is not a token id; expected an integer in \[0, 22\)/);
  });

  it('returns a copy of its tokenizer.json', () => {
    const json = tok.toJSON();
    expect(json).toEqual(byteLevelJson());
    (json as { model: { vocab: Record<string, number> } }).model.vocab['hello'] = 99;
    expect(tok.encode('hello')).toEqual([11]);
    expect((tok.toJSON() as { model: { vocab: Record<string, number> } }).model.vocab['hello']).toBe(11);
  });
});

describe('HfTokenizer, SentencePiece-style BPE with unk', () => {
  const tok = HfTokenizer.fromJSON(metaspaceJson(), 'sp.json');

  it('encodes with the metaspace and fuses unknown characters into one <unk>', () => {
    expect(tok.encode('a cat')).toEqual([10, 9]);
    expect(tok.encode('cat a')).toEqual([9, 10]);
    expect(tok.encode('a dog')).toEqual([10, 3, 0]); // ▁a · ▁ · <unk>(d o g)
    expect(tok.decode([10, 9])).toBe('a cat');
    expect(tok.decode([1, 10, 9, 2], { skipSpecial: true })).toBe('a cat');
  });

  it('pads with eos when there is no pad token, and names the missing image token', () => {
    expect(tok.specials.unk).toBe(0);
    expect(tok.specials.bos).toBe(1);
    expect(tok.specials.pad).toBe(2);
    expect(() => tok.specials.image).toThrow(/sp\.json: the tokenizer has no image token: tokenizer_config\.json names no image_token, the vocabulary has none of "<image>"/);
  });

  it('takes special names from tokenizer_config.json, as strings or {content}', () => {
    const t = HfTokenizer.fromJSON(metaspaceJson(), 'sp.json', { pad_token: { content: '<unk>' }, bos_token: '</s>' });
    expect(t.specials.pad).toBe(0);
    expect(t.specials.bos).toBe(2);
  });

  it('rejects a tokenizer_config special that the vocabulary lacks', () => {
    expect(() => HfTokenizer.fromJSON(metaspaceJson(), 'sp.json', { image_token: '<image>' })).toThrow(
      /sp\.json: tokenizer_config field "image_token" names "<image>", which is not in the vocabulary/,
    );
    expect(() => HfTokenizer.fromJSON(metaspaceJson(), 'sp.json', { eos_token: 5 })).toThrow(/"eos_token" must be a string or \{content: string\}, got number 5/);
  });
});

describe('HfTokenizer, other models', () => {
  it('reads a foreign WordLevel file, mapping unknown words to model.unk_token', () => {
    const json = {
      added_tokens: [specialEntry(['[UNK]', 2])],
      normalizer: null,
      pre_tokenizer: { type: 'WhitespaceSplit' },
      model: { type: 'WordLevel', vocab: { a: 0, b: 1, '[UNK]': 2 }, unk_token: '[UNK]' },
    };
    const tok = HfTokenizer.fromJSON(json, 'wl.json');
    expect(tok.encode('a c b')).toEqual([0, 2, 1]);
    expect(tok.specials.unk).toBe(2);
  });

  it('throws on a piece with no id instead of returning undefined', () => {
    const json = {
      added_tokens: [],
      pre_tokenizer: { type: 'WhitespaceSplit' },
      model: { type: 'WordPiece', vocab: { a: 0, b: 1 }, unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100 },
    };
    const tok = HfTokenizer.fromJSON(json, 'wp.json');
    expect(tok.encode('a b')).toEqual([0, 1]);
    expect(() => tok.encode('a c')).toThrow(/wp\.json: encode: the model produced token "\[UNK\]" for "a c", which has no id/);
  });

  it('reports components the library cannot build, naming the source', () => {
    const json = byteLevelJson();
    json['pre_tokenizer'] = { type: 'NoSuchPreTokenizer' };
    expect(() => HfTokenizer.fromJSON(json, 'bad.json')).toThrow(/bad\.json: @huggingface\/tokenizers could not build this tokenizer/);
  });
});
