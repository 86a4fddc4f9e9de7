import { mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig, type MllmConfig } from '../config.js';
import { toHfConfig } from './hf-config.js';
import {
  ModelFilesError,
  encodeModelFiles,
  llavaParameterShapes,
  loadModelFiles,
  parseModelFiles,
  saveModelFiles,
  type ModelTensor,
} from './model-files.js';
import { SafetensorsError, parseSafetensors, serializeSafetensors, type SerializableTensor } from './safetensors.js';

const PATCH = 'vision_tower.vision_model.embeddings.patch_embedding.weight';
const small = resolveConfig({ vision: { layers: 1 }, text: { layers: 1 } });
const untied = resolveConfig({ vision: { layers: 1, act: 'gelu_erf' }, text: { layers: 2, tieEmbeddings: false, kvHeads: 4 }, projector: { hidden: 48 } });

/** Deterministic, distinct values per tensor so a swapped or transposed tensor would show. */
function tensorsFor(c: MllmConfig): Map<string, ModelTensor> {
  const out = new Map<string, ModelTensor>();
  let k = 1;
  for (const [name, shape] of llavaParameterShapes(c)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const base = k++;
    out.set(name, { shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(base * 1000 + i)) });
  }
  return out;
}

/** The weights file of `c` with `edit` applied to its (file-layout) tensors. */
function weightsWith(c: MllmConfig, edit: (t: Map<string, SerializableTensor>) => void): Uint8Array {
  const file = parseSafetensors(encodeModelFiles({ config: c, tensors: tensorsFor(c) }).get('model.safetensors') as Uint8Array, 'w');
  const t = new Map<string, SerializableTensor>([...file.tensors].map(([n, x]) => [n, { dtype: 'F32', shape: x.shape, data: x.data }]));
  edit(t);
  return serializeSafetensors(t, { format: 'pt' });
}
const configJson = (c: MllmConfig) => JSON.stringify(toHfConfig(c));
const bytesOf = (a: Float32Array | Int32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
/** Shape equal and data bit-identical (a byte compare: toEqual walks typed arrays slowly). */
function expectSameTensor(got: { shape: number[]; data: Float32Array | Int32Array } | undefined, want: ModelTensor, name: string) {
  expect(got, name).toBeDefined();
  expect(got!.shape, name).toEqual(want.shape);
  expect(got!.data, name).toBeInstanceOf(Float32Array);
  expect(bytesOf(got!.data).equals(bytesOf(want.data)), name).toBe(true);
}

let root = '';
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'keel-model-files-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('llavaParameterShapes', () => {
  it('lists CLIP, projector and Llama parameters with (out, in) Linear shapes', () => {
    const s = llavaParameterShapes(untied);
    const { vision: v, text: t } = untied;
    // vision: 3 embeddings + 2 pre-LN + 16 per layer; projector 4; text: embed + norm + 9 per layer + lm_head
    expect(s.size).toBe(5 + 16 * v.layers + 4 + 2 + 9 * t.layers + 1);
    expect(s.get(PATCH)).toEqual([v.width, v.channels * v.patchSize ** 2]);
    expect(s.get('vision_tower.vision_model.embeddings.position_embedding.weight')).toEqual([(v.imageSize / v.patchSize) ** 2 + 1, v.width]);
    expect(s.get('multi_modal_projector.linear_1.weight')).toEqual([48, v.width]);
    expect(s.get('multi_modal_projector.linear_2.weight')).toEqual([t.width, 48]);
    expect(s.get('language_model.model.layers.1.self_attn.k_proj.weight')).toEqual([t.width, t.width]); // kvHeads = heads here
    expect(s.get('language_model.model.layers.0.mlp.down_proj.weight')).toEqual([t.width, t.intermediate]);
    expect(s.get('language_model.lm_head.weight')).toEqual([t.vocabSize, t.width]);
    expect(llavaParameterShapes(small).has('language_model.lm_head.weight')).toBe(false); // tied
    expect(llavaParameterShapes(small).get('language_model.model.layers.0.self_attn.v_proj.weight')).toEqual([64, 128]); // GQA: 2 of 4 heads
  });
});

describe('saveModelFiles / loadModelFiles', () => {
  it.each([
    ['tied default-sized', small],
    ['untied, GQA-free, custom projector', untied],
  ])('round-trips a %s model with tokenizer and extra files', async (_, config) => {
    const dir = join(root, `round-trip-${config.text.tieEmbeddings}`, 'nested');
    const tensors = tensorsFor(config);
    const tokenizer = { model: { type: 'WordLevel', vocab: { a: 0 } } };
    await saveModelFiles(dir, { config, tensors, tokenizer, extra: { 'adapter_config.json': { r: 4 }, 'README.md': '# notes\n' }, keelVersion: '0.1.0' });

    expect((await readdir(dir)).sort()).toEqual(['README.md', 'adapter_config.json', 'config.json', 'model.safetensors', 'tokenizer.json']);
    const configText = await readFile(join(dir, 'config.json'), 'utf8');
    expect(configText).toBe(`${JSON.stringify(toHfConfig(config, { keelVersion: '0.1.0' }), null, 2)}\n`);
    expect(await readFile(join(dir, 'README.md'), 'utf8')).toBe('# notes\n');
    expect(JSON.parse(await readFile(join(dir, 'adapter_config.json'), 'utf8'))).toEqual({ r: 4 });

    const file = parseSafetensors(new Uint8Array(await readFile(join(dir, 'model.safetensors'))), 'f');
    expect(file.metadata).toEqual({ format: 'pt' });
    const { width, channels, patchSize } = config.vision;
    expect(file.tensors.get(PATCH)!.shape).toEqual([width, channels, patchSize, patchSize]); // HF's conv layout
    expect(bytesOf(file.tensors.get(PATCH)!.data).equals(bytesOf(tensors.get(PATCH)!.data))).toBe(true); // same bytes
    for (const t of file.tensors.values()) expect(t.dtype).toBe('F32');

    const loaded = await loadModelFiles(dir);
    expect(loaded.config).toEqual(config);
    expect(loaded.tokenizer).toEqual(tokenizer);
    expect(loaded.unused).toEqual([]);
    expect([...loaded.tensors.keys()]).toEqual([...tensors.keys()]);
    for (const [name, t] of tensors) expectSameTensor(loaded.tensors.get(name), t, name);
  });

  it('overwrites an earlier checkpoint and leaves no temporary files', async () => {
    const dir = join(root, 'overwrite');
    const tensors = tensorsFor(small);
    await saveModelFiles(dir, { config: small, tensors });
    const changed = new Map(tensors);
    changed.set('language_model.model.norm.weight', { shape: [128], data: new Float32Array(128).fill(3) });
    await saveModelFiles(dir, { config: small, tensors: changed });
    expect((await readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
    const loaded = await loadModelFiles(`${dir}/`);
    expect(loaded.tensors.get('language_model.model.norm.weight')!.data[5]).toBe(3);
    expect(loaded.tokenizer).toBeNull();
  });

  it('reports a missing directory, a file in its place, and missing or corrupt files by name', async () => {
    const dir = join(root, 'broken');
    await saveModelFiles(dir, { config: small, tensors: tensorsFor(small) });
    const weights = await readFile(join(dir, 'model.safetensors'));

    await expect(loadModelFiles(join(root, 'nope'))).rejects.toThrow(new RegExp(`^${join(root, 'nope')}: model directory does not exist$`));
    await expect(loadModelFiles(join(dir, 'config.json'))).rejects.toThrow(/config\.json: expected a model directory, found a file/);

    await writeFile(join(dir, 'model.safetensors'), weights.subarray(0, weights.length - 3));
    await expect(loadModelFiles(dir)).rejects.toThrow(SafetensorsError);
    await expect(loadModelFiles(dir)).rejects.toThrow(/broken\/model\.safetensors: tensor "[^"]+": data_offsets \[\d+, \d+\] run past the \d+-byte buffer/);
    await writeFile(join(dir, 'model.safetensors'), weights.subarray(0, 5));
    await expect(loadModelFiles(dir)).rejects.toThrow(/broken\/model\.safetensors: file is 5 bytes/);

    await unlink(join(dir, 'model.safetensors'));
    await expect(loadModelFiles(dir)).rejects.toThrow(/broken\/model\.safetensors: missing \(the weights, as one safetensors file\)/);
    await writeFile(join(dir, 'model.safetensors.index.json'), '{}');
    await expect(loadModelFiles(dir)).rejects.toThrow(/model\.safetensors: missing; the directory holds a sharded checkpoint/);

    await writeFile(join(dir, 'model.safetensors'), weights);
    await writeFile(join(dir, 'tokenizer.json'), '{"model": ');
    await expect(loadModelFiles(dir)).rejects.toThrow(/broken\/tokenizer\.json: not valid JSON/);
    await unlink(join(dir, 'tokenizer.json'));

    await writeFile(join(dir, 'config.json'), '{"model_type": "llava",');
    await expect(loadModelFiles(dir)).rejects.toThrow(ModelFilesError);
    await expect(loadModelFiles(dir)).rejects.toThrow(/broken\/config\.json: not valid JSON/);
    await writeFile(join(dir, 'config.json'), '{"model_type": "llava"}');
    await expect(loadModelFiles(dir)).rejects.toThrow(ConfigError);
    await expect(loadModelFiles(dir)).rejects.toThrow(/broken\/config\.json: invalid Hugging Face LLaVA config/);
    await unlink(join(dir, 'config.json'));
    await expect(loadModelFiles(dir)).rejects.toThrow(/broken\/config\.json: missing/);
  });
});

describe('parseModelFiles (in-memory, browser path)', () => {
  it('equals what loadModelFiles returns', () => {
    const files = encodeModelFiles({ config: untied, tensors: tensorsFor(untied), tokenizer: { v: 1 } });
    const loaded = parseModelFiles(
      { configJson: files.get('config.json') as string, safetensors: files.get('model.safetensors') as Uint8Array, tokenizerJson: files.get('tokenizer.json') as string },
      'https://example.test/ckpt',
    );
    expect(loaded.config).toEqual(untied);
    expect(loaded.tokenizer).toEqual({ v: 1 });
    for (const [name, t] of tensorsFor(untied)) expectSameTensor(loaded.tensors.get(name), t, name);
  });

  it("returns an HF checkpoint's post_layernorm and a tied model's lm_head as unused", () => {
    const w = weightsWith(small, (t) => {
      t.set('vision_tower.vision_model.post_layernorm.weight', { dtype: 'F32', shape: [64], data: new Float32Array(64) });
      t.set('vision_tower.vision_model.post_layernorm.bias', { dtype: 'F32', shape: [64], data: new Float32Array(64) });
      t.set('language_model.lm_head.weight', { dtype: 'F32', shape: [256, 128], data: new Float32Array(256 * 128) });
    });
    const loaded = parseModelFiles({ configJson: configJson(small), safetensors: w }, 'hf');
    expect(loaded.unused).toEqual(['language_model.lm_head.weight', 'vision_tower.vision_model.post_layernorm.bias', 'vision_tower.vision_model.post_layernorm.weight']);
    expect(loaded.tensors.size).toBe(llavaParameterShapes(small).size);
  });

  it('renames the newer transformers layout and widens F16 weights', () => {
    const w = weightsWith(untied, (t) => {
      for (const [name, x] of [...t]) {
        t.delete(name);
        const renamed = name
          .replace(/^language_model\.model\./, 'model.language_model.')
          .replace(/^language_model\.lm_head\./, 'lm_head.')
          .replace(/^(vision_tower|multi_modal_projector)\./, 'model.$1.');
        t.set(renamed, { ...x, dtype: 'F16' });
      }
    });
    const loaded = parseModelFiles({ configJson: configJson(untied), safetensors: w }, 'new');
    expect(loaded.unused).toEqual([]);
    const want = tensorsFor(untied).get('language_model.lm_head.weight')!.data;
    const got = loaded.tensors.get('language_model.lm_head.weight')!.data;
    for (let i = 0; i < want.length; i += 97) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * 2 ** -11 + 2 ** -25);
  });

  it.each<[string, (t: Map<string, SerializableTensor>) => void, RegExp]>([
    ['a missing tensor', (t) => t.delete('language_model.model.norm.weight'), /^x\/model\.safetensors: missing 1 tensors the config needs: language_model\.model\.norm\.weight$/],
    ['a wrong shape', (t) => t.set('multi_modal_projector.linear_2.bias', { dtype: 'F32', shape: [2], data: new Float32Array(2) }), /tensor multi_modal_projector\.linear_2\.bias has shape \[2\] but config\.json implies \[128\]/],
    ['a 2-D patch embedding', (t) => t.set(PATCH, { dtype: 'F32', shape: [64, 192], data: new Float32Array(64 * 192) }), /patch_embedding\.weight has shape \[64,192\] but config\.json implies \[64,3,8,8\]/],
    ['an integer parameter', (t) => t.set('language_model.model.norm.weight', { dtype: 'I32', shape: [128], data: new Int32Array(128) }), /tensor language_model\.model\.norm\.weight has integer dtype I32/],
  ])('rejects %s', (_, edit, message) => {
    const w = weightsWith(small, edit);
    expect(() => parseModelFiles({ configJson: configJson(small), safetensors: w }, 'x')).toThrow(ModelFilesError);
    expect(() => parseModelFiles({ configJson: configJson(small), safetensors: w }, 'x')).toThrow(message);
  });
});

describe('encodeModelFiles', () => {
  it.each<[string, (t: Map<string, ModelTensor>) => Record<string, unknown>, RegExp]>([
    ['a missing tensor', (t) => (t.delete('language_model.model.norm.weight'), {}), /missing 1 tensors the config needs: language_model\.model\.norm\.weight/],
    ['a tensor the config has no parameter for', (t) => (t.set('language_model.lm_head.weight', { shape: [256, 128], data: new Float32Array(256 * 128) }), {}), /1 tensors the config has no parameter for: language_model\.lm_head\.weight/],
    ['a wrong shape', (t) => (t.set(PATCH, { shape: [64, 3, 8, 8], data: new Float32Array(64 * 192) }), {}), /patch_embedding\.weight: shape \[64,3,8,8\] but the config implies \[64,192\]/],
    ['data shorter than its shape', (t) => (t.set('language_model.model.norm.weight', { shape: [128], data: new Float32Array(3) }), {}), /norm\.weight: 3 values for shape \[128\]/],
    ['an extra file that escapes the directory', () => ({ extra: { '../x.json': {} } }), /extra file name "\.\.\/x\.json" must be a plain file name/],
    ['an extra file named like a checkpoint file', () => ({ extra: { 'config.json': {} } }), /extra file name "config\.json"/],
  ])('rejects %s', (_, edit, message) => {
    const tensors = tensorsFor(small);
    const more = edit(tensors);
    expect(() => encodeModelFiles({ config: small, tensors, ...more })).toThrow(message);
  });

  it('rejects an invalid config before writing anything', () => {
    const bad = { ...small, imageTokenId: 10_000 } as MllmConfig;
    expect(() => encodeModelFiles({ config: bad, tensors: tensorsFor(small) })).toThrow(/imageTokenId 10000 is outside the vocabulary/);
  });
});
