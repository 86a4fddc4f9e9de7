/**
 * Modules: trees of named parameters (HF-style dotted paths such as 'layers.0.attn.q_proj.weight'),
 * with train/eval mode, freezing by name pattern, and state dicts.
 *
 * - `Parameter` is a Tensor that requires gradients by default and survives every `tidy` scope (it
 *   is `keep`-ed at construction): parameters live until `module.dispose()`.
 * - Registration is explicit: `this.param(name, tensor)` and `this.module(name, child)` in the
 *   constructor. Order of registration is the order of `namedParameters()`: a module's own
 *   parameters first, then each child's, depth first (PyTorch's order).
 * - A parameter shared by two modules (tied weights) is listed once by `namedParameters()` (first
 *   path wins) and under every path by `stateDict()`.
 * - Name patterns (freeze/unfreeze/select): a glob over dotted names where `*` matches within one
 *   path segment, `**` across segments and `?` one character; a glob also matches every parameter
 *   below a module it names ('layers.*.mlp' and 'layers.*.mlp.*' both match
 *   'layers.0.mlp.fc.weight'). A RegExp is tested against the full name as written (anchor it
 *   yourself); a function receives the name.
 *
 * Non-goals: non-parameter buffers (running statistics), hooks, automatic property discovery.
 */
import { keep } from './scope.js';
import { Tensor } from './tensor.js';

/** A trainable tensor: shares the storage of the tensor it wraps, requires gradients, is never tidied. */
export class Parameter extends Tensor {
  constructor(data: Tensor, options: { requiresGrad?: boolean } = {}) {
    if (data.isDisposed) throw new Error(`Parameter: ${data} was disposed`);
    super(data.storage, data.shape, data.dtype, options.requiresGrad ?? true);
    keep(this);
  }
}

export type NamePattern = string | RegExp | ((name: string) => boolean);

const globCache = new Map<string, RegExp>();

/** The RegExp of a dotted-name glob (see the file comment): full match, or a match of a module prefix. */
export function globToRegExp(glob: string): RegExp {
  const cached = globCache.get(glob);
  if (cached) return cached;
  let src = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*' && glob[i + 1] === '*') {
      // '**.' may also match nothing (so '**.bias' matches a top-level 'bias')
      if (glob[i + 2] === '.') {
        src += '(?:.*\\.)?';
        i += 2;
      } else {
        src += '.*';
        i += 1;
      }
    } else if (ch === '*') src += '[^.]*';
    else if (ch === '?') src += '[^.]';
    else src += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  const re = new RegExp(`^${src}(?:\\..*)?$`);
  globCache.set(glob, re);
  return re;
}

/** Whether `name` matches `pattern` (see the file comment for the glob rules). */
export function matchesName(pattern: NamePattern, name: string): boolean {
  if (typeof pattern === 'function') return pattern(name);
  if (pattern instanceof RegExp) {
    pattern.lastIndex = 0; // a global/sticky RegExp keeps state between tests
    return pattern.test(name);
  }
  return globToRegExp(pattern).test(name);
}

function matchesAny(patterns: NamePattern | readonly NamePattern[], name: string): boolean {
  const list = Array.isArray(patterns) ? (patterns as readonly NamePattern[]) : [patterns as NamePattern];
  return list.some((p) => matchesName(p, name));
}

export interface LoadStateDictOptions {
  /** Missing or unexpected keys are an error (default true). Shapes must always match. */
  strict?: boolean;
}

export interface LoadStateDictResult {
  missing: string[];
  unexpected: string[];
}

export type StateDictValue = Tensor | Float32Array;
export type StateDictInput = ReadonlyMap<string, StateDictValue> | Readonly<Record<string, StateDictValue>>;

const shapeStr = (s: readonly number[]) => `[${s.join(', ')}]`;

export class Module {
  /** True after `train()` (the default), false after `eval()`. Layers such as dropout read it. */
  training = true;
  private readonly ownParams = new Map<string, Parameter>();
  private readonly children = new Map<string, Module>();

  private checkName(kind: string, name: string): void {
    if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`${this.constructor.name}.${kind}: invalid name '${name}' (letters, digits and _ only)`);
    if (this.ownParams.has(name) || this.children.has(name)) {
      throw new Error(`${this.constructor.name}.${kind}: '${name}' is already registered`);
    }
  }

  /**
   * Registers `data` as parameter `name` and returns it. A Parameter is registered as is (tied
   * weights); any other tensor is wrapped and this module takes ownership: `data` is disposed (its
   * storage lives on in the Parameter).
   */
  protected param(name: string, data: Tensor, options: { requiresGrad?: boolean } = {}): Parameter {
    this.checkName('param', name);
    let p: Parameter;
    if (data instanceof Parameter) p = data;
    else {
      if (data.dtype !== 'f32') throw new Error(`${this.constructor.name}.param: '${name}' must be f32, got ${data.dtype} [${data.shape}]`);
      p = new Parameter(data, options);
      data.dispose();
    }
    this.ownParams.set(name, p);
    return p;
  }

  /** Registers `child` as submodule `name` and returns it. */
  protected module<M extends Module>(name: string, child: M): M {
    this.checkName('module', name);
    if (child === (this as Module)) throw new Error(`${this.constructor.name}.module: a module cannot contain itself`);
    this.children.set(name, child);
    return child;
  }

  /** Every submodule with its dotted path, this module first (path ''). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.children) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  /** Direct children in registration order. */
  namedChildren(): [string, Module][] {
    return [...this.children];
  }

  /** Every parameter under its dotted path; a shared parameter appears once (first path). */
  namedParameters(): Map<string, Parameter> {
    const out = new Map<string, Parameter>();
    const seen = new Set<Parameter>();
    for (const [name, p] of this.allNamedParameters()) {
      if (seen.has(p)) continue;
      seen.add(p);
      out.set(name, p);
    }
    return out;
  }

  private *allNamedParameters(): Generator<[string, Parameter]> {
    for (const [path, m] of this.namedModules()) {
      for (const [name, p] of m.ownParams) yield [path ? `${path}.${name}` : name, p];
    }
  }

  /** The parameters in `namedParameters()` order; `{ trainable: true }` keeps those requiring gradients. */
  parameters(options: { trainable?: boolean } = {}): Parameter[] {
    const ps = [...this.namedParameters().values()];
    return options.trainable ? ps.filter((p) => p.requiresGrad) : ps;
  }

  /** Parameters whose name matches any of `patterns`. */
  select(patterns: NamePattern | readonly NamePattern[]): Map<string, Parameter> {
    return new Map([...this.namedParameters()].filter(([name]) => matchesAny(patterns, name)));
  }

  /** Sets the training flag on this module and every submodule. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Stops gradients for parameters matching `patterns` (their `.grad` is dropped). Returns the names. */
  freeze(patterns: NamePattern | readonly NamePattern[] = '**'): string[] {
    return this.setRequiresGrad(patterns, false);
  }

  /** Resumes gradients for parameters matching `patterns`. Returns the names. */
  unfreeze(patterns: NamePattern | readonly NamePattern[] = '**'): string[] {
    return this.setRequiresGrad(patterns, true);
  }

  private setRequiresGrad(patterns: NamePattern | readonly NamePattern[], on: boolean): string[] {
    const names: string[] = [];
    for (const [name, p] of this.select(patterns)) {
      p.requiresGrad = on;
      if (!on) {
        p.grad?.dispose();
        p.grad = null;
      }
      names.push(name);
    }
    return names;
  }

  /**
   * name → parameter, every path of a shared parameter included. The values ARE the live parameters
   * (no copies): read them with `toArray()`, do not dispose them.
   */
  stateDict(): Map<string, Tensor> {
    return new Map(this.allNamedParameters());
  }

  /**
   * Copies values into the parameters on the GPU (parameter identity is kept, so optimizers built on
   * them stay valid). Every value must have its parameter's shape (a Float32Array: its element count).
   * With `strict` (default) missing or unexpected keys throw, listing all of them.
   */
  loadStateDict(dict: StateDictInput, options: LoadStateDictOptions = {}): LoadStateDictResult {
    const strict = options.strict ?? true;
    const entries = dict instanceof Map ? [...dict] : Object.entries(dict);
    const given = new Map<string, StateDictValue>(entries);
    const targets = this.stateDict();
    const missing = [...targets.keys()].filter((k) => !given.has(k));
    const unexpected = [...given.keys()].filter((k) => !targets.has(k));
    if (strict && (missing.length || unexpected.length)) {
      throw new Error(
        `loadStateDict(${this.constructor.name}): ` +
          [missing.length ? `missing keys: ${missing.join(', ')}` : '', unexpected.length ? `unexpected keys: ${unexpected.join(', ')}` : '']
            .filter(Boolean)
            .join('; '),
      );
    }
    const mismatches: string[] = [];
    for (const [name, value] of given) {
      const p = targets.get(name);
      if (!p) continue;
      if (value instanceof Float32Array) {
        if (value.length !== p.size) mismatches.push(`'${name}': parameter has shape ${shapeStr(p.shape)} (${p.size} elements), got ${value.length} values`);
      } else if (value.shape.join() !== p.shape.join() || value.dtype !== p.dtype) {
        mismatches.push(`'${name}': parameter has shape ${shapeStr(p.shape)} ${p.dtype}, got ${shapeStr(value.shape)} ${value.dtype}`);
      } else if (value.isDisposed) mismatches.push(`'${name}': the given tensor was disposed`);
    }
    if (mismatches.length) throw new Error(`loadStateDict(${this.constructor.name}): ${mismatches.join('; ')}`);
    for (const [name, value] of given) {
      const p = targets.get(name);
      if (!p || p.size === 0) continue;
      if (value instanceof Float32Array) p.rt.write(p.buffer, value);
      else if (value.buffer !== p.buffer) p.rt.copy(value.buffer, p.buffer, p.size * 4);
    }
    return { missing, unexpected };
  }

  /** Drops every gradient of this module's parameters. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Total number of parameter elements (shared parameters counted once). */
  numParameters(options: { trainable?: boolean } = {}): number {
    return this.parameters(options).reduce((s, p) => s + p.size, 0);
  }

  /** Disposes every parameter (and gradient) of this module tree. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
  }
}
