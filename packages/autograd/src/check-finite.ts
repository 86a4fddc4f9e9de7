/**
 * NaN/Inf checking (issue 8). With `setCheckFinite(true)`, or KEEL_CHECK_FINITE=1 in Node's
 * environment, every op checks its f32 inputs — and backward the gradient each op receives — for
 * NaN and ±Infinity, and the first non-finite value in program order becomes an Error naming the
 * op, the input, its shape and the element:
 *   matmul: input 0 (shape [4,8]) holds NaN at index 13; NaN/Inf checking is on (setCheckFinite)
 *
 * Ops are synchronous and only reads wait for the GPU, so an op cannot look at its inputs' values.
 * Each check is instead one small kernel that writes the first non-finite index of the tensor (and
 * whether it is NaN, +Infinity or −Infinity) into a 4-byte slot of its runtime's log; the next
 * `toArray()` / `item()` on that runtime reads the log and throws for the earliest slot that caught
 * something. The error surfaces at that read, not at the op, but names the op all the same.
 *
 * Cost when on: per checked tensor one dispatch that reads it once (memory-bound, like an
 * elementwise op) and 4 bytes of GPU memory held until the next read; per read one extra readback
 * of 4 bytes per check since the previous one. When off: one boolean test per op and per read, no
 * dispatch, no buffer, no readback.
 *
 * Not checked: i32 tensors (they cannot hold NaN), f16 storage tensors (they only feed `cast`, whose
 * f32 output its consumer checks), reshape (a view that computes nothing), and kernels run outside
 * the ops — an optimizer's in-place update that makes a parameter non-finite is caught when the next
 * forward reads it. Non-finite values a program means, such as the −Infinity entries of a causal
 * logSoftmax, are reported too when an op consumes them.
 */
import { defineKernel, grid1d, type GpuBuffer, type Runtime } from '@keel/kernels';
import type { Tensor } from './tensor.js';

const WG = 256;
/** Checks per log buffer (16 KiB); a longer stretch between reads takes more buffers. */
const SLOTS = 4096;
/** A slot no kernel wrote to: the tensor was finite. */
const CLEAN = 0xffffffff;
const CLEAN_SLOTS = new Uint32Array(SLOTS).fill(CLEAN);
const KINDS = ['NaN', 'Infinity', '-Infinity'] as const;

/**
 * slots[slot] ← min over non-finite x[i] of 4·i + kind (kind 0 NaN, 1 +Inf, 2 −Inf), so the slot
 * ends holding the first such element. The test is on the bits (exponent all ones): WGSL lets
 * compilers assume floats are finite, so `x != x` may be folded away. 4·i fits in u32 for every
 * tensor a storage binding can hold (at most 2³⁰ f32 values).
 */
const firstNonFinite = defineKernel({
  name: 'firstNonFinite',
  bindings: [
    { name: 'x', type: 'array<u32>', access: 'read' }, // (N,) f32 values as bits
    { name: 'slots', type: 'array<atomic<u32>>', access: 'read_write' }, // (SLOTS,)
  ],
  uniforms: [
    { name: 'n', type: 'u32' },
    { name: 'slot', type: 'u32' },
  ],
  workgroupSize: () => [WG],
  dispatch: (_p, u) => grid1d(Math.ceil(u.n / WG)),
  key: () => '',
  wgsl: () => /* wgsl */ `
@compute @workgroup_size(WG_X)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG_X;
  if (i >= u.n) { return; }
  let bits = x[i];
  if ((bits & 0x7f800000u) != 0x7f800000u) { return; }
  var kind = 0u;
  if ((bits & 0x007fffffu) == 0u) { kind = 1u + (bits >> 31u); }
  atomicMin(&slots[u.slot], i * 4u + kind);
}`,
});

interface Check {
  op: string;
  what: string;
  shape: readonly number[];
}

/** The checks dispatched on one runtime since its last read, in program order, and their slots. */
interface Log {
  checks: Check[];
  buffers: GpuBuffer[];
}

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
let on = env?.['KEEL_CHECK_FINITE'] === '1';
const logs = new WeakMap<Runtime, Log>();
/** Runtimes with a log; lets a read skip the lookup when nothing was checked. */
let pending = 0;

/** Turns NaN/Inf checking on or off (file comment); returns the previous setting. */
export function setCheckFinite(enabled: boolean): boolean {
  if (typeof enabled !== 'boolean') throw new Error(`setCheckFinite: expected true or false, got ${String(enabled)}`);
  const previous = on;
  on = enabled;
  return previous;
}

/** @internal Whether ops should call checkInputs / checkGradient. */
export function isCheckFiniteOn(): boolean {
  return on;
}

function enqueue(t: Tensor, op: string, what: string): void {
  if (t.dtype !== 'f32' || t.size === 0 || t.isDisposed) return;
  const rt = t.rt;
  let log = logs.get(rt);
  if (!log) {
    log = { checks: [], buffers: [] };
    logs.set(rt, log);
    pending++;
  }
  const slot = log.checks.length % SLOTS;
  if (slot === 0) {
    const buf = rt.createBuffer(SLOTS * 4);
    rt.write(buf, CLEAN_SLOTS);
    log.buffers.push(buf);
  }
  log.checks.push({ op, what, shape: t.shape });
  rt.dispatch(firstNonFinite, undefined, { buffers: { x: t.buffer, slots: log.buffers[log.buffers.length - 1]! }, uniforms: { n: t.size, slot } });
}

/** @internal Checks the f32 tensors among an op's inputs (index = position in `inputs`). */
export function checkInputs(op: string, inputs: readonly (Tensor | null | undefined)[]): void {
  inputs.forEach((t, i) => t && enqueue(t, op, `input ${i}`));
}

/** @internal Checks the gradient that reaches an op in backward. */
export function checkGradient(op: string, dy: Tensor): void {
  enqueue(dy, `${op} backward`, 'the incoming gradient');
}

/**
 * @internal Takes the runtime's log (synchronously, so it holds exactly the checks recorded before
 * the caller's read) and returns a function that reads it and throws for the first non-finite value.
 * Null when nothing was checked.
 */
export function takeChecks(rt: Runtime): (() => Promise<void>) | null {
  if (pending === 0) return null;
  const log = logs.get(rt);
  if (!log) return null;
  logs.delete(rt);
  pending--;
  return async () => {
    try {
      for (let b = 0; b < log.buffers.length; b++) {
        const count = Math.min(SLOTS, log.checks.length - b * SLOTS);
        const codes = await rt.readU32(log.buffers[b]!, 0, count);
        const s = codes.findIndex((c) => c !== CLEAN);
        if (s < 0) continue;
        const { op, what, shape } = log.checks[b * SLOTS + s]!;
        const code = codes[s]!;
        throw new Error(`${op}: ${what} (shape [${shape}]) holds ${KINDS[code % 4]} at index ${Math.floor(code / 4)}; NaN/Inf checking is on (setCheckFinite)`);
      }
    } finally {
      for (const buf of log.buffers) rt.release(buf);
    }
  };
}
