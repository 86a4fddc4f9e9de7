/**
 * Fuzz of the two JSON files a checkpoint is read from besides its weights (issue 8): config.json
 * (text → parseModelFiles → fromHfConfig) and tokenizer.json (parsed JSON → parseTokenizerJson).
 * Random bytes and mutations of valid files must either give something usable — a config that
 * survives toHfConfig → fromHfConfig unchanged, a tokenizer that encodes and decodes — or throw the
 * documented error: ConfigError / ModelFilesError prefixed with the file, or for tokenizers a plain
 * Error prefixed with the source. A TypeError or RangeError from deep inside fails the test, and so
 * does a hang (the counts are fixed; the test's timeout bounds the time).
 *
 * The safetensors parser has its own fuzz in safetensors.test.ts.
 */
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, mllmConfigSchema, resolveConfig } from '../config.js';
import { parseTokenizerJson } from '../tokenizer/load.js';
import { WordTokenizer } from '../tokenizer/word.js';
import { MAX_LAYERS, fromHfConfig, toHfConfig } from './hf-config.js';
import { ModelFilesError, parseModelFiles } from './model-files.js';
import { serializeSafetensors } from './safetensors.js';

/** xorshift32: the same inputs on every run, so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

const JSONISH = [...'{}[]":,-.0123456789eEtrufalsn _abcxyz'].map((c) => c.charCodeAt(0));
/** Values a mutation puts in place of a node: wrong types, edge numbers, plausible names. */
const REPLACEMENTS: unknown[] = [
  null, true, false, 0, -1, 1, 2, 3, 1.5, -0.5, 4096, 1e9, 1e308, -1e308, 2 ** 53, '', 'x', '8', 'gelu', 'silu', 'llava', 'llama',
  'BPE', 'WordLevel', 'WordPiece', 'Unigram', '<unk>', 'a b', [], [1], ['a', 'b'], [['a', 0]], {}, { type: 'Sequence' }, { type: 'Split' },
  { content: '<s>', id: 0 }, { a: 0 },
];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** One random structural edit somewhere in `root` (a deep copy): replace, delete, insert or swap. */
function mutateJson(root: Json, next: () => number): Json {
  const copy = structuredClone(root);
  const containers: (Json[] | { [k: string]: Json })[] = [];
  const walk = (v: Json) => {
    if (v !== null && typeof v === 'object') {
      containers.push(v);
      for (const c of Array.isArray(v) ? v : Object.values(v)) walk(c);
    }
  };
  walk(copy);
  const target = containers[next() % containers.length]!;
  const keys = Array.isArray(target) ? target.map((_, i) => i) : Object.keys(target);
  const value = structuredClone(REPLACEMENTS[next() % REPLACEMENTS.length]) as Json;
  const kind = next() % 4;
  if (keys.length === 0 || kind === 2) {
    if (Array.isArray(target)) target.splice(next() % (target.length + 1), 0, value);
    else target[`k${next() % 4}`] = value;
  } else if (kind === 0) {
    const key = keys[next() % keys.length]!;
    (target as Record<string | number, Json>)[key] = value;
  } else if (kind === 1) {
    const key = keys[next() % keys.length]!;
    if (Array.isArray(target)) target.splice(key as number, 1);
    else delete target[key as string];
  } else if (Array.isArray(target) && target.length > 1) {
    const i = next() % target.length;
    const j = next() % target.length;
    [target[i], target[j]] = [target[j]!, target[i]!];
  } else {
    const key = keys[next() % keys.length]!;
    (target as Record<string | number, Json>)[key] = structuredClone(copy);
  }
  return copy;
}

/** Text-level damage: truncation, random bytes, or JSON-ish characters overwritten. */
function mutateText(text: string, next: () => number): string {
  const bytes = new TextEncoder().encode(text);
  const kind = next() % 3;
  if (kind === 0) return new TextDecoder().decode(bytes.slice(0, next() % bytes.length));
  const out = bytes.slice();
  const edits = 1 + (next() % 4);
  for (let k = 0; k < edits; k++) out[next() % out.length] = kind === 1 ? next() & 0xff : JSONISH[next() % JSONISH.length]!;
  return new TextDecoder().decode(out);
}

function randomText(next: () => number): string {
  const len = next() % 48;
  const alphabet = next() % 2 === 0 ? JSONISH : null;
  return new TextDecoder().decode(Uint8Array.from({ length: len }, () => (alphabet ? alphabet[next() % alphabet.length]! : next() & 0xff)));
}

/** Names the input in a failure, so it can be pasted into a regression test. */
function fail(what: string, input: unknown, e: unknown): never {
  const shown = typeof input === 'string' ? JSON.stringify(input) : JSON.stringify(input)?.slice(0, 2000);
  throw new Error(`${what}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}\ninput: ${shown}`);
}

describe('config.json fuzz', () => {
  // no tensors: a config that parses then fails on its missing weights, which ends each case cheaply
  const noWeights = serializeSafetensors([]);
  const valid: Json[] = [
    toHfConfig(resolveConfig({ vision: { layers: 1 }, text: { layers: 1 } })) as unknown as Json,
    toHfConfig(resolveConfig({ vision: { act: 'gelu_erf' }, text: { tieEmbeddings: false, kvHeads: 4 }, projector: { hidden: 48, downsample: 2 } })) as unknown as Json,
  ];

  /** Runs one config.json text; returns whether it parsed. */
  function check(text: string): boolean {
    try {
      parseModelFiles({ configJson: text, safetensors: noWeights }, 'fuzz');
    } catch (e) {
      if (e instanceof ConfigError && e.message.startsWith('fuzz/config.json: invalid Hugging Face LLaVA config:\n  ')) return false;
      if (e instanceof ModelFilesError && e.message.startsWith('fuzz/config.json: not valid JSON (')) return false;
      if (!(e instanceof ModelFilesError && e.message.startsWith('fuzz/model.safetensors: missing '))) fail('config.json', text, e);
      // the config itself was accepted: it must be a valid keel config that round-trips
      const config = fromHfConfig(JSON.parse(text), 'fuzz/config.json');
      expect(mllmConfigSchema.safeParse(config).success).toBe(true);
      expect(fromHfConfig(toHfConfig(config), 'again')).toEqual(config);
      return true;
    }
    return fail('config.json', text, new Error('parsed with no weights at all'));
  }

  it('random bytes, damaged text and structural edits parse to a valid config or throw ConfigError / ModelFilesError', () => {
    const next = rng(8);
    let parsed = 0;
    let rejected = 0;
    for (let i = 0; i < 600; i++) (check(randomText(next)) ? parsed++ : rejected++);
    for (let i = 0; i < 600; i++) (check(mutateText(JSON.stringify(valid[i % 2]), next)) ? parsed++ : rejected++);
    for (let i = 0; i < 1500; i++) {
      let json: Json = valid[i % 2]!;
      for (let k = 0, n = 1 + (next() % 3); k < n; k++) json = mutateJson(json, next);
      (check(JSON.stringify(json)) ? parsed++ : rejected++);
    }
    // both outcomes occur: edits of unknown keys or equal values keep a file valid
    expect(parsed).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(parsed);
  }, 60_000);

  it('a layer count no model has is a ConfigError naming the field, not a loader that enumerates it', () => {
    const json = structuredClone(valid[0]) as Record<string, Record<string, Json>>;
    json['text_config']!['num_hidden_layers'] = 1e9;
    const text = JSON.stringify(json);
    expect(() => parseModelFiles({ configJson: text, safetensors: noWeights }, 'fuzz')).toThrow(ConfigError);
    expect(() => parseModelFiles({ configJson: text, safetensors: noWeights }, 'fuzz')).toThrow(
      new RegExp(`text_config\\.num_hidden_layers: 1000000000 layers exceed keel's limit of ${MAX_LAYERS}`),
    );
    json['text_config']!['num_hidden_layers'] = MAX_LAYERS;
    expect(() => parseModelFiles({ configJson: JSON.stringify(json), safetensors: noWeights }, 'fuzz')).toThrow(/^fuzz\/model\.safetensors: missing \d+ tensors/);
  });
});

describe('tokenizer.json fuzz', () => {
  const special = (content: string, id: number) => ({ id, content, special: true, normalized: false, lstrip: false, rstrip: false, single_word: false });
  const valid: Json[] = [
    WordTokenizer.fromWords(['what', 'is', 'this', '?', 'red']).toJSON() as Json,
    {
      added_tokens: [special('<s>', 9), special('<image>', 10)],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', unk_token: null, vocab: { a: 0, b: 1, c: 2, 'Ġ': 3, ab: 4, 'Ġa': 5, 'Ġab': 6, '!': 7, d: 8 }, merges: ['a b', 'Ġ a', 'Ġa b'] },
    },
    {
      added_tokens: [special('<unk>', 0)],
      normalizer: { type: 'Lowercase' },
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      model: { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0], ['▁', -1], ['a', -2], ['b', -2], ['▁a', -1.5], ['ab', -1.2]] },
    },
    {
      added_tokens: [special('[UNK]', 0), special('[PAD]', 1)],
      normalizer: null,
      pre_tokenizer: { type: 'Whitespace' },
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: { '[UNK]': 0, '[PAD]': 1, a: 2, '##b': 3, ab: 4 } },
    },
  ];

  /** Runs one parsed tokenizer.json; a tokenizer it builds must encode and decode. Returns whether it built. */
  function check(json: unknown): boolean {
    const source = 'fuzz/tokenizer.json';
    const documented = (e: unknown) => e instanceof Error && e.constructor === Error && e.message.startsWith(`${source}: `);
    let tok;
    try {
      tok = parseTokenizerJson(json, source);
    } catch (e) {
      if (documented(e)) return false;
      fail('tokenizer.json', json, e);
    }
    try {
      const ids = tok.encode('ab a, what is this? <image> Zz');
      for (const id of ids) expect(Number.isInteger(id) && id >= 0 && id < tok.vocabSize, `id ${id} of ${tok.vocabSize}`).toBe(true);
      expect(typeof tok.decode(ids)).toBe('string');
    } catch (e) {
      // an unknown piece with no unk token to stand in is a documented encode error
      if (!documented(e)) fail('tokenizer.json (encode/decode)', json, e);
    }
    return true;
  }

  it('random text, damaged text and structural edits build a working tokenizer or throw a plain Error naming the source', () => {
    // the library warns on every mutated Split pattern it cannot read; thousands of lines of noise
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    let built = 0;
    let rejected = 0;
    try {
      const next = rng(88);
      const tryText = (text: string) => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          return; // not JSON: parseModelFiles reports that before a tokenizer is read (model-files.test.ts)
        }
        (check(json) ? built++ : rejected++);
      };
      for (let i = 0; i < 400; i++) tryText(randomText(next));
      for (let i = 0; i < 400; i++) tryText(mutateText(JSON.stringify(valid[i % valid.length]), next));
      for (let i = 0; i < 800; i++) {
        let json: Json = valid[i % valid.length]!;
        for (let k = 0, n = 1 + (next() % 3); k < n; k++) json = mutateJson(json, next);
        (check(json) ? built++ : rejected++);
      }
    } finally {
      vi.restoreAllMocks();
    }
    expect(built).toBeGreaterThan(0);
    expect(rejected).toBeGreaterThan(0);
  }, 60_000);

  // two findings of the fuzz, kept as plain cases
  it('a Unigram unk_id outside the vocabulary is rejected at load, not handed out by encode', () => {
    const json = structuredClone(valid[2]) as { model: Record<string, Json> };
    json.model['unk_id'] = 9;
    expect(() => parseTokenizerJson(json, 'u.json')).toThrow(/^u\.json: field "model\.unk_id" must be the id of a "model\.vocab" entry, an integer in \[0, 6\), got number 9$/);
    json.model['unk_id'] = 0;
    expect(parseTokenizerJson(json, 'u.json').encode('Zz')).toEqual([1, 0]); // "▁" (id 1), then "zz" unknown
  });

  it('a pre-tokenizer setting the library cannot run fails at load naming the file, not as a TypeError in encode', () => {
    const json = WordTokenizer.fromWords(['a']).toJSON() as { pre_tokenizer: { pretokenizers: Record<string, Json>[] } };
    json.pre_tokenizer.pretokenizers[1]!['behavior'] = { isolated: true };
    const load = () => parseTokenizerJson(json, 'w.json');
    expect(load).toThrow(/^w\.json: @huggingface\/tokenizers could not build this tokenizer: /);
    expect(load).not.toThrow(TypeError);
  });
});
