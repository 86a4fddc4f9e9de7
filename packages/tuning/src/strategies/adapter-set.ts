/**
 * Several named adapters on one model, switched at inference (PEFT's add_adapter / set_adapter):
 *
 *   const set = new AdapterSet(model);
 *   set.add('math', applyTuning(model, { strategy: 'lora', name: 'math' }));
 *   set.add('chat', applyTuning(model, { strategy: 'lora', name: 'chat' }));
 *   set.use('math');   // the model computes W + ΔW_math on every adapted layer
 *   set.useNone();     // the base model, exactly
 *
 * Each adapter is an ordinary TuningHandle whose hooks are owned by '<method>:<name>' (lora.ts), so
 * adapters of different names sit side by side on one Linear; `use(name)` enables that handle and
 * disables every other, so at most one adapter is in the function at a time and a disabled one adds
 * nothing (its hook returns W untouched). Training one adapter while the others are disabled leaves
 * them alone: their tensors are not in the graph.
 *
 * Files follow PEFT's multi-adapter save_pretrained: the adapter named 'default' at the top of the
 * directory, every other one in a subfolder named after it; `AdapterSet.load` reads that back, the
 * folder name being the adapter's name.
 *
 * Only methods with a `name` config field take part (the low-rank family: lora, dora): a selective
 * method rewrites the base weights in place, and two of them cannot take turns on the same tensors.
 * Non-goals: several adapters active at once (weighted combination), per-request routing in a batch,
 * merging more than the first adapter of a layer (lora.ts merges only a leading weight hook).
 */
import type { MultimodalModel } from '@keel/mllm';
import { ADAPTER_CONFIG_FILE, readAdapterConfig, type EncodeAdapterOptions } from './adapter-files.js';
import { applyTuning, type TuningHandle } from './apply.js';
import type { StrategyContext } from './strategy.js';

/** The top-level adapter of a saved set (PEFT's default adapter name). */
export const DEFAULT_ADAPTER = 'default';

export class AdapterSet {
  private readonly handles = new Map<string, TuningHandle>();
  private current: string | null = null;

  constructor(readonly model: MultimodalModel) {}

  /**
   * Adds a handle applied to this set's model whose config field `name` is `name`. It joins disabled,
   * so the set's current choice stays in force; use(name) puts it in the function.
   */
  add(name: string, handle: TuningHandle): void {
    if (this.handles.has(name)) throw new Error(`AdapterSet.add: an adapter named '${name}' is already in the set (${this.names().join(', ')})`);
    if (handle.model !== this.model) throw new Error(`AdapterSet.add: adapter '${name}' was applied to another model`);
    const own = (handle.config as { name?: unknown } | null)?.name;
    if (own === undefined) throw new Error(`AdapterSet.add: '${handle.strategy}' adapters have no name (config field 'name'); only methods that install named hooks (lora, dora) can share a model`);
    if (own !== name) throw new Error(`AdapterSet.add: the handle's adapter is named '${String(own)}' (config field 'name'), not '${name}'`);
    handle.disable();
    this.handles.set(name, handle);
  }

  /** The handle of adapter `name`. */
  get(name: string): TuningHandle {
    const h = this.handles.get(name);
    if (!h) throw new Error(`AdapterSet: no adapter named '${name}'; the set holds ${this.handles.size ? this.names().map((n) => `'${n}'`).join(', ') : 'none'}`);
    return h;
  }

  /** Makes `name` the one adapter in the function: enables it, disables every other. */
  use(name: string): void {
    const chosen = this.get(name);
    for (const [n, h] of this.handles) if (n !== name) h.disable();
    chosen.enable();
    this.current = name;
  }

  /** Disables every adapter: the model computes the base function exactly. */
  useNone(): void {
    for (const h of this.handles.values()) h.disable();
    this.current = null;
  }

  /** The adapter in use, or null. */
  get active(): string | null {
    return this.current;
  }

  /** Adapter names in the order they were added. */
  names(): string[] {
    return [...this.handles.keys()];
  }

  /** Writes every adapter: 'default' into `dir`, each other one into `dir/<name>` (PEFT's layout). */
  async save(dir: string, options: EncodeAdapterOptions = {}): Promise<void> {
    for (const [name, h] of this.handles) await h.save(name === DEFAULT_ADAPTER ? dir : `${dir}/${name}`, options);
  }

  /**
   * Reads a directory written by `save` (or by PEFT-style tools that add keel's config fields): the
   * adapter at the top as 'default', every subfolder holding an adapter_config.json under the folder's
   * name. All come back disabled; pick one with use().
   */
  static async load(model: MultimodalModel, dir: string, context: StrategyContext = {}): Promise<AdapterSet> {
    const { readdir, stat } = await import('node:fs/promises');
    const { readAdapterFiles } = await import('./adapter-files.node.js');
    const exists = (path: string) => stat(path).then((s) => s.isFile(), () => false);
    const found: [string, string][] = [];
    if (await exists(`${dir}/${ADAPTER_CONFIG_FILE}`)) found.push([DEFAULT_ADAPTER, dir]);
    for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (entry.isDirectory() && entry.name !== DEFAULT_ADAPTER && (await exists(`${dir}/${entry.name}/${ADAPTER_CONFIG_FILE}`))) found.push([entry.name, `${dir}/${entry.name}`]);
    }
    if (found.length === 0) throw new Error(`AdapterSet.load: ${dir} holds no ${ADAPTER_CONFIG_FILE}, neither at the top nor in a subfolder`);
    const set = new AdapterSet(model);
    try {
      for (const [name, where] of found) {
        const files = await readAdapterFiles(where);
        const saved = readAdapterConfig(files.configJson, `${where}/${ADAPTER_CONFIG_FILE}`);
        const handle = applyTuning(model, { ...saved.config, strategy: saved.strategy, name }, context);
        try {
          handle.loadFiles(files, where);
        } catch (e) {
          handle.dispose();
          throw e;
        }
        set.add(name, handle);
      }
    } catch (e) {
      set.dispose();
      throw e;
    }
    return set;
  }

  /** Disposes every handle, the last added first (each restores the freeze flags it found). */
  dispose(): void {
    for (const h of [...this.handles.values()].reverse()) h.dispose();
    this.handles.clear();
    this.current = null;
  }
}
