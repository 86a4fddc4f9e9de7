/**
 * Copies the vision tower (every `vision_tower.*` tensor) of one model directory into a copy of
 * another: the recipe step behind the bases' frozen-tower continuation (see their cards). The two
 * vision configs must be equal; everything else (connector, language model, tokenizer, config) comes
 * from BASE. Writes OUT as a model directory `keel pretrain --init` reads, without a metrics.json: no
 * single command made these weights, so a run continued from them records no init command.
 *
 *   node --conditions=source --import tsx scripts/recipes/graft-tower.ts BASE DONOR OUT
 */
import { isDeepStrictEqual } from 'node:util';
import { loadModelFiles, saveModelFiles } from '@keel/mllm';

const [base, donor, out] = process.argv.slice(2);
if (!base || !donor || !out) throw new Error('usage: graft-tower.ts BASE DONOR OUT');
const a = await loadModelFiles(base);
const b = await loadModelFiles(donor);
if (!isDeepStrictEqual(a.config.vision, b.config.vision)) throw new Error(`graft-tower: the vision configs of ${base} and ${donor} differ`);
const tensors = new Map(a.tensors);
let n = 0;
for (const [name, t] of b.tensors) {
  if (!name.startsWith('vision_tower.')) continue;
  if (!a.tensors.has(name)) throw new Error(`graft-tower: ${base} has no tensor ${name}`);
  tensors.set(name, t);
  n++;
}
if (n === 0) throw new Error(`graft-tower: ${donor} has no vision_tower.* tensors`);
await saveModelFiles(out, { config: a.config, tensors, ...(a.tokenizer ? { tokenizer: a.tokenizer } : {}) });
console.log(`grafted ${n} vision_tower tensors of ${donor} into ${out}`);
