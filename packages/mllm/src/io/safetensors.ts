/**
 * The safetensors checkpoint format, read and written in memory (pure: runs in a browser).
 *
 *   [N: u64 little-endian][N bytes of UTF-8 JSON header][byte buffer]
 *   header = { "__metadata__"?: { string: string },
 *              name: { "dtype": "F32", "shape": [d0, d1, …], "data_offsets": [begin, end] }, … }
 * Offsets are relative to the start of the byte buffer; data is C-order, little-endian. The header
 * must start with `{` and may be padded with trailing spaces. The tensors must index the buffer
 * exactly: no overlaps, no holes, no trailing bytes (the spec's "fully indexed" rule, which is what
 * stops a file from smuggling data past a reader).
 *
 * Parsing decodes every tensor eagerly into keel's two host types: floats of any width become a
 * Float32Array (F16, BF16, F8 exactly; F64 rounded), integers and BOOL become an Int32Array (I64,
 * U64, U32 only when every value fits). Writing emits F32, F16 (rounded to nearest even) or I32,
 * tensors in UTF-8 byte order of their names, `__metadata__` first with sorted keys, the header
 * padded with spaces to a multiple of 8 so the buffer starts aligned, as the Rust implementation
 * does. (Rust orders by dtype alignment before name, so the bytes match its output for files of one
 * dtype — keel's F32 checkpoints — and for mixed files only up to tensor order.)
 *
 * Non-goals: lazy or memory-mapped access, slicing, sharded checkpoints, decoding the sub-byte
 * (F4, F6_*) and complex (C64) dtypes, which are recognised and validated but rejected.
 */
import { f16ToF32, f32BitsToF16, f8e4m3ToF32, f8e5m2ToF32, f8e8m0ToF32 } from './float-formats.js';

/** Thrown for any malformed or unsupported file; the message starts with the file's source. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

/** Bits per element of every dtype in the safetensors spec. */
const DTYPE_BITS = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32, F64: 64, I64: 64, U64: 64, C64: 64, F4: 4, F6_E2M3: 6, F6_E3M2: 6,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BITS;
/** The dtypes `serializeSafetensors` writes. */
export type SerializableDtype = 'F32' | 'F16' | 'I32';

export interface SafetensorsTensor {
  /** The dtype stored in the file (the data is already widened to f32 or i32). */
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string> | null;
  tensors: Map<string, SafetensorsTensor>;
}

export interface SerializableTensor {
  dtype: SerializableDtype;
  shape: readonly number[];
  /** Float32Array for F32 and F16 (rounded on write), Int32Array for I32; length = ∏ shape. */
  data: Float32Array | Int32Array;
}

/** The Rust reader's limit; a longer header is treated as hostile. */
export const MAX_HEADER_BYTES = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const describeValue = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? `the string ${JSON.stringify(v).slice(0, 40)}` : `${typeof v} ${String(v).slice(0, 40)}`);

interface Entry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  numel: number;
  begin: number;
  end: number;
}

/** Parses and validates a whole file; `source` (a path or URL) prefixes every error message. */
export function parseSafetensors(bytes: Uint8Array, source: string): SafetensorsFile {
  const fail = (msg: string) => new SafetensorsError(`${source}: ${msg}`);
  if (!(bytes instanceof Uint8Array)) throw fail(`expected the file's bytes as a Uint8Array, got ${describeValue(bytes)}`);
  if (bytes.length < 8) throw fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) throw fail(`header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLength = Number(n);
  if (8 + headerLength > bytes.length) throw fail(`header length ${headerLength} runs past the end of the file (${bytes.length} bytes)`);

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLength));
  } catch {
    throw fail('header is not valid UTF-8');
  }
  if (!text.startsWith('{')) throw fail(`header must start with '{', starts with ${JSON.stringify(text.slice(0, 10))}`);
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (!isRecord(header)) throw fail(`header must be a JSON object, got ${describeValue(header)}`);

  const bufferStart = 8 + headerLength;
  const bufferLength = bytes.length - bufferStart;
  let metadata: Record<string, string> | null = null;
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') metadata = parseMetadata(value, fail);
    else entries.push(parseEntry(name, value, bufferLength, fail));
  }
  checkCoverage(entries, bufferLength, fail);

  const tensors = new Map<string, SafetensorsTensor>();
  for (const e of entries) {
    const at = bufferStart + e.begin;
    const data = decode(bytes, view, at, e, (msg) => fail(`tensor ${JSON.stringify(e.name)}: ${msg}`));
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { metadata, tensors };
}

function parseMetadata(value: unknown, fail: (msg: string) => SafetensorsError): Record<string, string> | null {
  if (value === null) return null;
  if (!isRecord(value)) throw fail(`__metadata__ must be an object of strings, got ${describeValue(value)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw fail(`__metadata__[${JSON.stringify(k)}] is ${describeValue(v)}, expected a string`);
    out[k] = v;
  }
  return out;
}

function parseEntry(name: string, value: unknown, bufferLength: number, fail: (msg: string) => SafetensorsError): Entry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!isRecord(value)) throw fail(`${where}: entry is ${describeValue(value)}, expected an object with dtype, shape and data_offsets`);
  for (const key of ['dtype', 'shape', 'data_offsets']) {
    if (!hasOwn(value, key)) throw fail(`${where}: entry has no ${key}`);
  }
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string' || !hasOwn(DTYPE_BITS, dtype)) {
    throw fail(`${where}: unknown dtype ${JSON.stringify(dtype)}; the spec's dtypes are ${Object.keys(DTYPE_BITS).join(', ')}`);
  }
  if (!Array.isArray(shape)) throw fail(`${where}: shape is ${describeValue(shape)}, expected an array of dimensions`);
  let numel = 1;
  for (const [i, d] of shape.entries()) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) throw fail(`${where}: shape[${i}] is ${describeValue(d)}, expected a non-negative integer`);
    numel *= d;
  }
  if (!Number.isSafeInteger(numel)) throw fail(`${where}: shape [${shape.join(', ')}] has more elements than any file can hold`);
  if (!Array.isArray(offsets) || offsets.length !== 2) throw fail(`${where}: data_offsets is ${describeValue(offsets)}, expected [begin, end]`);
  const [begin, end] = offsets as unknown[];
  for (const [label, o] of [['begin', begin], ['end', end]] as const) {
    if (typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0) throw fail(`${where}: data_offsets ${label} is ${describeValue(o)}, expected a non-negative integer`);
  }
  const b = begin as number;
  const e = end as number;
  if (b > e) throw fail(`${where}: data_offsets [${b}, ${e}] end before they begin`);
  if (e > bufferLength) throw fail(`${where}: data_offsets [${b}, ${e}] run past the ${bufferLength}-byte buffer`);
  const bits = numel * DTYPE_BITS[dtype as SafetensorsDtype];
  if (bits % 8 !== 0) throw fail(`${where}: ${numel} ${dtype} elements fill ${bits} bits, not a whole number of bytes`);
  if (e - b !== bits / 8) {
    throw fail(`${where}: holds ${e - b} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${numel} × ${DTYPE_BITS[dtype as SafetensorsDtype] / 8} = ${bits / 8}`);
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], numel, begin: b, end: e };
}

/** Sorted by offset, each tensor must start where the previous one ended and the last must end the buffer. */
function checkCoverage(entries: Entry[], bufferLength: number, fail: (msg: string) => SafetensorsError): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous: Entry | null = null;
  for (const e of sorted) {
    if (e.begin < covered) {
      throw fail(`tensor ${JSON.stringify(e.name)}: bytes [${e.begin}, ${e.end}) overlap tensor ${JSON.stringify(previous!.name)} [${previous!.begin}, ${previous!.end})`);
    }
    if (e.begin > covered) {
      throw fail(`bytes [${covered}, ${e.begin}) of the buffer belong to no tensor (before tensor ${JSON.stringify(e.name)}); the buffer must be fully indexed`);
    }
    covered = e.end;
    previous = e;
  }
  if (covered !== bufferLength) {
    throw fail(`bytes [${covered}, ${bufferLength}) at the end of the buffer belong to no tensor; the buffer must be fully indexed`);
  }
}

/** One tensor's bytes (validated length) → f32 or i32 host data. */
function decode(bytes: Uint8Array, view: DataView, at: number, e: Entry, fail: (msg: string) => SafetensorsError): Float32Array | Int32Array {
  const n = e.numel;
  const dtype = e.dtype;
  switch (dtype) {
    case 'F32':
    case 'I32': {
      const Out = dtype === 'F32' ? Float32Array : Int32Array;
      if (LITTLE_ENDIAN) return new Out(bytes.slice(at, at + 4 * n).buffer);
      const out = new Out(n);
      for (let i = 0; i < n; i++) out[i] = dtype === 'F32' ? view.getFloat32(at + 4 * i, true) : view.getInt32(at + 4 * i, true);
      return out;
    }
    case 'F16': {
      const table = f16Table();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[view.getUint16(at + 2 * i, true)]!;
      return out;
    }
    case 'BF16': {
      // bf16 is the high half of an f32: widen the bits so NaN payloads survive too
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(at + 2 * i, true) << 16 >>> 0;
      return out;
    }
    case 'F64': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(at + 8 * i, true);
      return out;
    }
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'F8_E8M0': {
      const f = dtype === 'F8_E4M3' ? f8e4m3ToF32 : dtype === 'F8_E5M2' ? f8e5m2ToF32 : f8e8m0ToF32;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = f(bytes[at + i]!);
      return out;
    }
    case 'BOOL':
    case 'U8':
    case 'I8':
    case 'U16':
    case 'I16': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        if (dtype === 'BOOL') out[i] = bytes[at + i] !== 0 ? 1 : 0;
        else if (dtype === 'U8') out[i] = bytes[at + i]!;
        else if (dtype === 'I8') out[i] = view.getInt8(at + i);
        else if (dtype === 'U16') out[i] = view.getUint16(at + 2 * i, true);
        else out[i] = view.getInt16(at + 2 * i, true);
      }
      return out;
    }
    case 'U32':
    case 'I64':
    case 'U64': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = dtype === 'U32' ? BigInt(view.getUint32(at + 4 * i, true)) : dtype === 'I64' ? view.getBigInt64(at + 8 * i, true) : view.getBigUint64(at + 8 * i, true);
        if (v < -2147483648n || v > 2147483647n) throw fail(`${dtype} element ${i} = ${v} does not fit in int32`);
        out[i] = Number(v);
      }
      return out;
    }
    case 'C64':
    case 'F4':
    case 'F6_E2M3':
    case 'F6_E3M2':
      throw fail(`dtype ${dtype} is valid safetensors but keel cannot decode it (it reads real floats of 8 bits or more and integers)`);
    default:
      throw fail(`dtype ${dtype satisfies never} has no decoder`);
  }
}

let f16Lookup: Float32Array | null = null;
/** All 65 536 f16 values, built once: a table read beats the branchy conversion per element. */
function f16Table(): Float32Array {
  if (!f16Lookup) {
    f16Lookup = new Float32Array(65536);
    for (let b = 0; b < 65536; b++) f16Lookup[b] = f16ToF32(b);
  }
  return f16Lookup;
}

/** UTF-8 byte order, the order Rust's `String: Ord` gives (UTF-16 order differs above U+FFFF). */
function compareUtf8(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** Writes a complete file. Throws SafetensorsError naming the tensor for any inconsistent input. */
export function serializeSafetensors(
  tensors: Iterable<readonly [string, SerializableTensor]>,
  metadata?: Record<string, string> | null,
): Uint8Array {
  const fail = (msg: string) => new SafetensorsError(`serializeSafetensors: ${msg}`);
  const utf8 = new TextEncoder();
  const items: { name: string; key: Uint8Array; t: SerializableTensor; bytes: number }[] = [];
  const seen = new Set<string>();
  for (const [name, t] of tensors) {
    const where = `tensor ${JSON.stringify(name)}`;
    if (typeof name !== 'string' || name === '__metadata__') throw fail(`tensor name ${describeValue(name)} is not allowed`);
    if (seen.has(name)) throw fail(`${where} appears twice`);
    seen.add(name);
    if (!isRecord(t)) throw fail(`${where}: expected { dtype, shape, data }, got ${describeValue(t)}`);
    if (t.dtype !== 'F32' && t.dtype !== 'F16' && t.dtype !== 'I32') throw fail(`${where}: dtype ${JSON.stringify(t.dtype)} cannot be written; use F32, F16 or I32`);
    const wants = t.dtype === 'I32' ? Int32Array : Float32Array;
    if (!(t.data instanceof wants)) throw fail(`${where}: ${t.dtype} data must be a ${wants.name}, got ${t.data?.constructor?.name ?? describeValue(t.data)}`);
    if (!Array.isArray(t.shape)) throw fail(`${where}: shape must be an array, got ${describeValue(t.shape)}`);
    let numel = 1;
    for (const [i, d] of t.shape.entries()) {
      if (!Number.isSafeInteger(d) || d < 0) throw fail(`${where}: shape[${i}] is ${describeValue(d)}, expected a non-negative integer`);
      numel *= d;
    }
    if (numel !== t.data.length) throw fail(`${where}: shape [${t.shape.join(', ')}] has ${numel} elements but data has ${t.data.length}`);
    items.push({ name, key: utf8.encode(name), t, bytes: numel * (t.dtype === 'F16' ? 2 : 4) });
  }
  items.sort((a, b) => compareUtf8(a.key, b.key));

  // The header is built by hand: JSON.stringify would hoist integer-like names ("0") to the front.
  const parts: string[] = [];
  if (metadata != null) {
    if (!isRecord(metadata)) throw fail(`metadata must be an object of strings, got ${describeValue(metadata)}`);
    const keys = Object.keys(metadata).sort();
    for (const k of keys) if (typeof metadata[k] !== 'string') throw fail(`metadata[${JSON.stringify(k)}] is ${describeValue(metadata[k])}, expected a string`);
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const it of items) {
    parts.push(`${JSON.stringify(it.name)}:{"dtype":"${it.t.dtype}","shape":[${it.t.shape.join(',')}],"data_offsets":[${offset},${offset + it.bytes}]}`);
    offset += it.bytes;
  }
  const json = utf8.encode(`{${parts.join(',')}}`);
  const headerLength = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerLength + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let at = 8 + headerLength;
  for (const { t, bytes } of items) {
    if (t.dtype === 'F16') {
      const bits = new Uint32Array(t.data.buffer, t.data.byteOffset, t.data.length);
      for (let i = 0; i < bits.length; i++) view.setUint16(at + 2 * i, f32BitsToF16(bits[i]!), true);
    } else if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, bytes), at);
    } else {
      for (let i = 0; i < t.data.length; i++) {
        if (t.dtype === 'F32') view.setFloat32(at + 4 * i, t.data[i]!, true);
        else view.setInt32(at + 4 * i, t.data[i]!, true);
      }
    }
    at += bytes;
  }
  return out;
}
