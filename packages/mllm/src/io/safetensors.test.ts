import { describe, expect, it } from 'vitest';
import { f16ToF32, f32ToF16 } from './float-formats.js';
import { SafetensorsError, parseSafetensors, serializeSafetensors, type SerializableTensor } from './safetensors.js';

/** Builds a file by hand: u64 LE header length, the header text as given (no padding), then the buffer. */
function handFile(headerText: string, buffer: number[] | Uint8Array, headerLengthOverride?: bigint): Uint8Array {
  const header = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + header.length + buffer.length);
  new DataView(out.buffer).setBigUint64(0, headerLengthOverride ?? BigInt(header.length), true);
  out.set(header, 8);
  out.set(buffer, 8 + header.length);
  return out;
}
const le32f = (...xs: number[]) => [...new Uint8Array(new Float32Array(xs).buffer)];
const le32i = (...xs: number[]) => [...new Uint8Array(new Int32Array(xs).buffer)];
const entry = (dtype: string, shape: number[], begin: number, end: number) => ({ dtype, shape, data_offsets: [begin, end] });
const fileOf = (header: object, buffer: number[]) => handFile(JSON.stringify(header), buffer);

/** Seeded 32-bit generator (SplitMix32) so the fuzz cases are the same on every run. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

describe('serializeSafetensors', () => {
  it('writes byte for byte the layout of a hand-built file (sorted names, metadata first, space padding)', () => {
    const text = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1,1],"data_offsets":[8,12]}}';
    const padded = text + ' '.repeat((8 - (text.length % 8)) % 8);
    const expected = handFile(padded, [...le32f(1, -2), ...le32i(7)]);
    const out = serializeSafetensors(
      [
        ['b', { dtype: 'I32', shape: [1, 1], data: new Int32Array([7]) }],
        ['a', { dtype: 'F32', shape: [2], data: new Float32Array([1, -2]) }],
      ],
      { format: 'pt' },
    );
    expect(padded.length % 8).toBe(0);
    expect([...out]).toEqual([...expected]);
  });

  it('writes F16 as rounded half floats and sorts by UTF-8 bytes, not by JS key order', () => {
    // 1, -2, 65504, 0.5 and 1 + 2⁻¹¹ (a tie that rounds to even 1.0)
    const text = '{"10":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},"9":{"dtype":"F32","shape":[],"data_offsets":[10,14]}}';
    const padded = text + ' '.repeat((8 - (text.length % 8)) % 8);
    const half = [0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x00, 0x38, 0x00, 0x3c];
    const expected = handFile(padded, [...half, ...le32f(3.5)]);
    const out = serializeSafetensors([
      ['9', { dtype: 'F32', shape: [], data: new Float32Array([3.5]) }],
      ['10', { dtype: 'F16', shape: [5], data: new Float32Array([1, -2, 65504, 0.5, 1 + 2 ** -11]) }],
    ]);
    expect([...out]).toEqual([...expected]);
  });

  it('writes an empty file as "{}" padded to 8 bytes', () => {
    expect([...serializeSafetensors([])]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32]);
  });

  it.each([
    ['a dtype it cannot write', [['x', { dtype: 'BF16', shape: [1], data: new Float32Array(1) }]], /"x": dtype "BF16" cannot be written/],
    ['data of the wrong array type', [['x', { dtype: 'I32', shape: [1], data: new Float32Array(1) }]], /"x": I32 data must be a Int32Array/],
    ['a shape that disagrees with the data', [['x', { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) }]], /"x": shape \[2, 2\] has 4 elements but data has 3/],
    ['a negative dimension', [['x', { dtype: 'F32', shape: [-1], data: new Float32Array(0) }]], /"x": shape\[0\] is number -1/],
    ['a duplicate name', [['x', { dtype: 'F32', shape: [0], data: new Float32Array(0) }], ['x', { dtype: 'F32', shape: [0], data: new Float32Array(0) }]], /"x" appears twice/],
    ['the reserved name __metadata__', [['__metadata__', { dtype: 'F32', shape: [0], data: new Float32Array(0) }]], /__metadata__.*not allowed/],
  ])('rejects %s', (_, tensors, message) => {
    expect(() => serializeSafetensors(tensors as [string, SerializableTensor][])).toThrow(message);
  });

  it('rejects metadata values that are not strings', () => {
    expect(() => serializeSafetensors([], { step: 3 } as unknown as Record<string, string>)).toThrow(/metadata\["step"\] is number 3, expected a string/);
  });
});

describe('parseSafetensors', () => {
  it('round-trips F32, I32 and F16 tensors, scalars, empty tensors, metadata and unicode names', () => {
    const next = rng(7);
    const rand = (n: number) => Float32Array.from({ length: n }, () => (next() / 2 ** 32 - 0.5) * 100);
    const tensors: [string, SerializableTensor][] = [
      ['vision_tower.vision_model.embeddings.patch_embedding.weight', { dtype: 'F32', shape: [4, 3, 2, 2], data: rand(48) }],
      ['ids', { dtype: 'I32', shape: [2, 3], data: Int32Array.from([-2147483648, -1, 0, 1, 2147483647, 42]) }],
      ['half', { dtype: 'F16', shape: [7], data: Float32Array.from([0, -0, 1e-8, 65504, 70000, -Infinity, 0.1]) }],
      ['scalar', { dtype: 'F32', shape: [], data: new Float32Array([Math.PI]) }],
      ['empty', { dtype: 'F32', shape: [0, 5], data: new Float32Array(0) }],
      ['θ→ü.Ω', { dtype: 'F32', shape: [1], data: new Float32Array([-1]) }],
    ];
    const metadata = { format: 'pt', note: 'ünïcode "quoted"' };
    const bytes = serializeSafetensors(tensors, metadata);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + headerLength) % 8).toBe(0); // data starts aligned
    const parsed = parseSafetensors(bytes, 'mem');
    expect(parsed.metadata).toEqual(metadata);
    expect([...parsed.tensors.keys()].sort()).toEqual(tensors.map(([n]) => n).sort());
    for (const [name, t] of tensors) {
      const got = parsed.tensors.get(name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      const want = t.dtype === 'F16' ? Float32Array.from(t.data, (x) => f16ToF32(f32ToF16(x))) : t.data;
      expect(got.data).toEqual(want);
    }
    const half = parsed.tensors.get('half')!.data;
    expect(Object.is(half[1], -0)).toBe(true);
    expect(half[4]).toBe(Infinity); // 70000 overflows f16
  });

  it('decodes every readable dtype from a hand-built file', () => {
    const buf: number[] = [];
    const header: Record<string, object> = {};
    const add = (name: string, dtype: string, shape: number[], bytes: number[]) => {
      header[name] = entry(dtype, shape, buf.length, buf.length + bytes.length);
      buf.push(...bytes);
    };
    add('bf16', 'BF16', [3], [0x80, 0x3f, 0x40, 0xc0, 0xc0, 0x7f]); // 1, -3, NaN
    add('f64', 'F64', [1], [...new Uint8Array(new Float64Array([0.1]).buffer)]);
    add('i64', 'I64', [2], [...new Uint8Array(new BigInt64Array([-5n, 2147483647n]).buffer)]);
    add('u64', 'U64', [1], [...new Uint8Array(new BigUint64Array([9n]).buffer)]);
    add('u32', 'U32', [1], [...new Uint8Array(new Uint32Array([123456]).buffer)]);
    add('i16', 'I16', [2], [0xff, 0xff, 0x02, 0x00]);
    add('u16', 'U16', [1], [0xff, 0xff]);
    add('i8', 'I8', [2], [0xfe, 0x05]);
    add('u8', 'U8', [1], [0xfe]);
    add('bool', 'BOOL', [3], [0, 1, 7]);
    add('e4m3', 'F8_E4M3', [2], [0x38, 0x7e]);
    add('e5m2', 'F8_E5M2', [1], [0x3c]);
    add('e8m0', 'F8_E8M0', [1], [128]);
    const t = parseSafetensors(fileOf(header, buf), 'dtypes.safetensors').tensors;
    const values = (name: string) => [...t.get(name)!.data];
    expect(values('bf16').slice(0, 2)).toEqual([1, -3]);
    expect(values('bf16')[2]).toBeNaN();
    expect(t.get('f64')!.data).toEqual(new Float32Array([0.1]));
    expect(values('i64')).toEqual([-5, 2147483647]);
    expect(values('u64')).toEqual([9]);
    expect(values('u32')).toEqual([123456]);
    expect(values('i16')).toEqual([-1, 2]);
    expect(values('u16')).toEqual([65535]);
    expect(values('i8')).toEqual([-2, 5]);
    expect(values('u8')).toEqual([254]);
    expect(values('bool')).toEqual([0, 1, 1]);
    expect(values('e4m3')).toEqual([1, 448]);
    expect(values('e5m2')).toEqual([1]);
    expect(values('e8m0')).toEqual([2]);
    for (const name of ['i64', 'u8', 'bool']) expect(t.get(name)!.data).toBeInstanceOf(Int32Array);
    expect(t.get('e4m3')!.data).toBeInstanceOf(Float32Array);
  });

  it('accepts a header padded with spaces and a null __metadata__', () => {
    const parsed = parseSafetensors(handFile('{"__metadata__":null,"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}   ', le32f(2)), 'm');
    expect(parsed.metadata).toBeNull();
    expect([...parsed.tensors.get('x')!.data]).toEqual([2]);
  });

  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const cases: [string, () => Uint8Array, RegExp][] = [
    ['a file shorter than 8 bytes', () => new Uint8Array(5), /^f: file is 5 bytes, shorter than the 8-byte header length/],
    ['a header length beyond the file', () => handFile('{}', [], 100n), /^f: header length 100 runs past the end of the file \(10 bytes\)/],
    ['a header length over 100 MB', () => handFile('{}', [], 100_000_001n), /^f: header length 100000001 exceeds the 100000000-byte limit/],
    ['a header that is not UTF-8', () => handFile('{}', []).map((b, i) => (i === 9 ? 0xff : b)), /^f: header is not valid UTF-8/],
    ['a header that is not JSON', () => handFile('{"x":', []), /^f: header is not valid JSON/],
    ['a header that is not an object', () => handFile('[1, 2]', []), /^f: header must start with '\{'/],
    ['an entry that is not an object', () => fileOf({ w: 3 }, []), /^f: tensor "w": entry is number 3, expected an object/],
    ['an entry missing dtype', () => fileOf({ w: { shape: [2], data_offsets: [0, 8] } }, le32f(1, 2)), /^f: tensor "w": entry has no dtype/],
    ['an entry missing shape', () => fileOf({ w: { dtype: 'F32', data_offsets: [0, 8] } }, le32f(1, 2)), /^f: tensor "w": entry has no shape/],
    ['an entry missing data_offsets', () => fileOf({ w: { dtype: 'F32', shape: [2] } }, le32f(1, 2)), /^f: tensor "w": entry has no data_offsets/],
    ['an unknown dtype', () => fileOf({ w: { ...ok, dtype: 'F33' } }, le32f(1, 2)), /^f: tensor "w": unknown dtype "F33"/],
    ['a negative dimension', () => fileOf({ w: { ...ok, shape: [-2] } }, le32f(1, 2)), /^f: tensor "w": shape\[0\] is number -2, expected a non-negative integer/],
    ['a non-integer dimension', () => fileOf({ w: { ...ok, shape: [1.5] } }, le32f(1, 2)), /^f: tensor "w": shape\[0\] is number 1.5/],
    ['offsets past the buffer', () => fileOf({ w: { ...ok, data_offsets: [0, 12] } }, le32f(1, 2)), /^f: tensor "w": data_offsets \[0, 12\] run past the 8-byte buffer/],
    ['offsets that end before they begin', () => fileOf({ w: { ...ok, data_offsets: [8, 0] } }, le32f(1, 2)), /^f: tensor "w": data_offsets \[8, 0\] end before they begin/],
    ['a byte length that is not numel × itemsize', () => fileOf({ w: { ...ok, shape: [3] } }, le32f(1, 2)), /^f: tensor "w": holds 8 bytes but shape \[3\] of F32 needs 3 × 4 = 12/],
    ['overlapping tensors', () => fileOf({ a: entry('F32', [2], 0, 8), b: entry('F32', [1], 4, 8) }, le32f(1, 2)), /^f: tensor "b": bytes \[4, 8\) overlap tensor "a" \[0, 8\)/],
    ['a hole between tensors', () => fileOf({ a: entry('F32', [1], 0, 4), b: entry('F32', [1], 8, 12) }, le32f(1, 2, 3)), /^f: bytes \[4, 8\) of the buffer belong to no tensor \(before tensor "b"\)/],
    ['trailing bytes no tensor covers', () => fileOf({ a: entry('F32', [1], 0, 4) }, le32f(1, 2)), /^f: bytes \[4, 8\) at the end of the buffer belong to no tensor/],
    ['metadata values that are not strings', () => fileOf({ __metadata__: { epoch: 3 } }, []), /^f: __metadata__\["epoch"\] is number 3, expected a string/],
    ['metadata that is not an object', () => fileOf({ __metadata__: ['a'] }, []), /^f: __metadata__ must be an object of strings, got an array/],
    ['an I64 value outside int32', () => fileOf({ ids: entry('I64', [1], 0, 8) }, [...new Uint8Array(new BigInt64Array([2n ** 40n]).buffer)]), /^f: tensor "ids": I64 element 0 = 1099511627776 does not fit in int32/],
    ['a dtype keel cannot decode', () => fileOf({ q: entry('F4', [4], 0, 2) }, [0, 0]), /^f: tensor "q": dtype F4 is valid safetensors but keel cannot decode it/],
    ['a sub-byte tensor that is not a whole number of bytes', () => fileOf({ q: entry('F4', [3], 0, 2) }, [0, 0]), /^f: tensor "q": 3 F4 elements fill 12 bits/],
  ];
  it.each(cases)('rejects %s with SafetensorsError', (_, build, message) => {
    const bytes = build();
    expect(() => parseSafetensors(bytes, 'f')).toThrow(SafetensorsError);
    expect(() => parseSafetensors(bytes, 'f')).toThrow(message);
  });

  it('fuzz: random bytes and mutated files either parse consistently or throw SafetensorsError', () => {
    const next = rng(2024);
    const valid = serializeSafetensors(
      [
        ['a', { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
        ['b', { dtype: 'F16', shape: [4], data: Float32Array.from([1, 2, 3, 4]) }],
        ['c', { dtype: 'I32', shape: [1], data: Int32Array.from([9]) }],
      ],
      { format: 'pt' },
    );
    const jsonish = [...'{}[]":,-.0123456789eE '].map((c) => c.charCodeAt(0));
    function mutate(src: Uint8Array): Uint8Array {
      const kind = next() % 5;
      if (kind === 0) return src.slice(0, next() % src.length); // truncate
      if (kind === 1) return Uint8Array.from([...src, ...Array.from({ length: 1 + (next() % 8) }, () => next() & 0xff)]); // append
      const out = src.slice();
      const edits = 1 + (next() % 4);
      for (let k = 0; k < edits; k++) {
        // mostly inside the header, where structure lives; sometimes the length prefix
        const at = kind === 4 ? next() % 8 : next() % out.length;
        out[at] = kind === 2 ? next() & 0xff : jsonish[next() % jsonish.length]!;
      }
      return out;
    }
    const inputs: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const len = next() % 64;
      const bytes = Uint8Array.from({ length: len }, () => next() & 0xff);
      // half of them get a plausible header length so parsing goes past the prefix check
      if (len >= 8 && i % 2 === 0) new DataView(bytes.buffer).setBigUint64(0, BigInt(next() % (len - 7)), true);
      inputs.push(bytes);
    }
    for (let i = 0; i < 2000; i++) inputs.push(mutate(valid));

    // The work is bounded by count: 4000 inputs of at most valid.length + 8 bytes, and a parse may
    // not produce more values than its input has bytes (no element is smaller than one byte), so a
    // header that claims a huge tensor fails instead of allocating. The test timeout bounds a hang.
    let parsed = 0;
    for (const bytes of inputs) {
      expect(bytes.length).toBeLessThanOrEqual(Math.max(64, valid.length + 8));
      try {
        const f = parseSafetensors(bytes, 'fuzz');
        parsed++;
        let values = 0;
        for (const [, t] of f.tensors) {
          expect(t.data.length).toBe(t.shape.reduce((a, b) => a * b, 1));
          values += t.data.length;
        }
        expect(values).toBeLessThanOrEqual(bytes.length);
      } catch (e) {
        if (!(e instanceof SafetensorsError)) throw new Error(`non-SafetensorsError for bytes [${[...bytes]}]: ${String(e)}`);
        expect(e.message.startsWith('fuzz: ')).toBe(true);
      }
    }
    expect(parsed).toBeGreaterThan(0); // some mutations (e.g. in the data) keep the file valid
  }, 20_000);
});
