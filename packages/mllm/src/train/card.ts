/**
 * The model card written next to a pre-trained checkpoint: what data, how many steps, how long,
 * and the held-out scores — every number from the run that produced the weights.
 */
import { imageTokenCount, resamplerSizes, type MllmConfig } from '../config.js';
import type { PretrainResult } from './pretrain.js';

/** One line on the connector family: the LLaVA MLP (optionally after a VILA patch merge) or the resampler. */
function connectorLine(c: MllmConfig): string {
  if (c.projector.type === 'resampler') {
    const r = resamplerSizes(c);
    return `Perceiver-style resampler, ${r.queries} learned queries cross-attending to the patches, ${r.layers} layers of width ${r.width}, ${r.heads} heads${c.projector.positions === 'sincos2d' ? ', fixed 2D sin-cos patch positions added to the keys and values' : ', no patch positions'}`;
  }
  const d = c.projector.downsample;
  return `${d > 1 ? `VILA-style ${d}×${d} patch merge, then a ` : 'LLaVA-1.5 '}2-layer GELU MLP`;
}

export interface CardContext {
  /** The command line that produced the checkpoint. */
  command: string;
  /** Device description (adapter, backend). */
  device: string;
  date: string;
  /** Continued pre-training: the model directory the run started from and, when recorded, its own command and seconds. */
  init?: { from: string; command?: string; seconds?: number; swappedFrom?: string };
}

const pct = (x: number | undefined): string => (x === undefined ? 'n/a' : `${(100 * x).toFixed(1)} %`);

export function modelCard(r: PretrainResult, ctx: CardContext, general: readonly string[], downstream: readonly string[]): string {
  const c = r.model.config;
  const params = r.model.numParameters();
  const o = r.options;
  const last = r.lossCurve[r.lossCurve.length - 1];
  const visionLast = r.visionLossCurve[r.visionLossCurve.length - 1];
  const rows = (names: readonly string[]) => names.map((n) => `| ${n} | ${pct(r.scores[n])} |`).join('\n');
  const kinds = Object.entries(o.kindWeights);
  const init = ctx.init;
  const initText = init
    ? `Continued pre-training: the run starts from the weights of \`${init.from}\`${init.command ? `, which were pre-trained by \`${init.command}\`${init.seconds !== undefined ? ` (${(init.seconds / 60).toFixed(1)} min)` : ''}` : ' (its recipe is not recorded)'}.${init.swappedFrom ? ` Connector swap: its vision tower and language model are taken, its ${init.swappedFrom} connector is not — this model's connector starts from a fresh initialization (seed ${o.seed}).` : ''}\n\n`
    : '';
  const trained = o.freeze.length ? `the model except ${o.freeze.map((g) => `\`${g}\``).join(', ')} (frozen)` : 'the whole model';
  const stage2 = `${init ? 'Continued training' : 'Stage 2'}, ${trained} on the general suite`;
  return `# keel base model (${c.projector.type === 'resampler' ? 'resampler connector' : 'LLaVA-style'}, ${(params / 1e6).toFixed(2)} M parameters)

Pre-trained by \`${ctx.command}\` on ${ctx.date}, on ${ctx.device}.
Deterministic from the seed: the same command${init ? ' (after the one that made its --init weights)' : ''} on the same device reproduces these weights.

## Architecture
- Vision: CLIP-style ViT, ${c.vision.imageSize}×${c.vision.imageSize} RGB input, ${c.vision.patchSize}×${c.vision.patchSize} patches, width ${c.vision.width}, ${c.vision.layers} blocks, ${c.vision.heads} heads, MLP ${c.vision.intermediate}.
- Connector: ${connectorLine(c)} → ${imageTokenCount(c)} image tokens.
- Language model: Llama-style, width ${c.text.width}, ${c.text.layers} blocks, ${c.text.heads} heads / ${c.text.kvHeads} kv heads, SwiGLU ${c.text.intermediate}, vocabulary ${c.text.vocabSize} words, tied embeddings: ${c.text.tieEmbeddings}.
- Files: \`config.json\` (HF LLaVA format), \`model.safetensors\` (f32, HF llava-1.5 parameter names), \`tokenizer.json\` (HF WordLevel).

## Data (general suite only)
Batches mix ${Object.entries(o.mix).map(([k, v]) => `${k} ${v}`).join(', ')} (relative weights), drawn from ${o.pool} generated training examples per image task${kinds.length ? `; within a task, ${kinds.map(([k, w]) => `${k} questions are drawn ${w}×`).join(', ')} as often as the other types` : ''}:
- caption — synthetic scenes of 1–2 shapes (square, circle, triangle; 6 colours; small/large; left/right/top/bottom), full-sentence captions;
- vqa — questions about colour, shape, size, presence and position in such scenes, one-word answers;
- text — text-only general knowledge (arithmetic, opposites, sequences, facts).
No downstream task (MNIST digits, novel shapes, counting) is seen.

## Training
${initText}${
  o.visionSteps > 0
    ? `Stage 1, the vision tower alone: ${o.visionSteps} steps × ${o.batchSize} fresh scenes (1–2 objects of the base shapes, training split) of dense scene parsing — a linear head on each patch feature names the shape, colour and size of the object under the patch, or none; the head is discarded. AdamW (peak lr ${o.lr}, cosine to 10 %, clip 1). ${(r.visionSeconds / 60).toFixed(1)} min, final loss ${visionLast ? visionLast[1].toFixed(4) : 'n/a'} (sum of the three heads' cross-entropies).

${stage2}: `
    : init
      ? `${stage2}: `
      : 'No vision stage: the whole model on the general suite from initialization, '
}${o.steps} steps × ${o.batchSize} examples, AdamW (peak lr ${o.lr}, ${o.warmup} warmup steps, cosine to 10 %, weight decay 0.01 on matrices, clip 1), seed ${o.seed}.
Took ${(r.seconds / 60).toFixed(1)} min in all (${init ? 'this run' : 'stage 2'}: ${r.samplesPerSec.toFixed(1)} examples/s${init?.seconds !== undefined ? `; ${((init.seconds + r.seconds) / 60).toFixed(1)} min with the run that made the init weights` : ''}). Final training loss ${last ? last[1].toFixed(4) : 'n/a'}.

## Held-out scores (exact match, greedy, ${o.evalCount} examples per task)
General suite:

| task | accuracy |
|---|---|
${rows(general)}

Downstream tasks (never trained on — low by design):

| task | accuracy |
|---|---|
${rows(downstream)}

Per question type (general suite):

| task | type | examples | accuracy |
|---|---|---:|---|
${general.flatMap((t) => Object.entries(r.byKind[t] ?? {}).map(([k, v]) => `| ${t} | ${k} | ${v.count} | ${pct(v.accuracy)} |`)).join('\n')}
`;
}
