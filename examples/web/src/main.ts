/**
 * The page: fetches the bundled base model, and on "Train" runs session.ts's experiment with the
 * chosen method, drawing the loss after every step and the model's answers before and after.
 *
 * State for scripts and tests lives on `window.__keel` (KeelPageState): `status` moves
 * loading → ready → training → done (→ training … on the next run) or → error; `losses` grows during a
 * run; `result` holds the last finished run (its numbers, no images). Query parameters
 * `strategy`, `steps`, `seed` prefill the form; `autorun=1` presses Train once ready.
 *
 * Non-goals: saving the adapter (handle.toFiles() would give its bytes), several runs at once.
 */
import { getRuntime, type Runtime } from '@keel/kernels';
import { normalizeAnswer } from '@keel/mllm';
import { drawLossChart } from './loss-chart.js';
import { STRATEGIES, runSession, unavailableReason, type Answer, type ModelBytes, type RunResult, type StrategyName } from './session.js';

export interface KeelPageState {
  status: 'loading' | 'ready' | 'training' | 'done' | 'error';
  /** The status line's text. */
  message: string;
  /** The WebGPU adapter, once the device is up. */
  device: string | null;
  /** Methods the page cannot run, with the reason shown to the user. */
  unavailable: Partial<Record<StrategyName, string>>;
  /** Losses of the current (or last) run so far. */
  losses: number[];
  result: Omit<RunResult, 'images'> | null;
  error: string | null;
  /** Finished runs. */
  runs: number;
}

declare global {
  interface Window {
    __keel: KeelPageState;
  }
}

const state: KeelPageState = { status: 'loading', message: 'loading…', device: null, unavailable: {}, losses: [], result: null, error: null, runs: 0 };
window.__keel = state;

function byId<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`index.html has no #${id}`);
  return e as T;
}

const ui = {
  strategy: byId<HTMLSelectElement>('strategy'),
  steps: byId<HTMLInputElement>('steps'),
  seed: byId<HTMLInputElement>('seed'),
  train: byId<HTMLButtonElement>('train'),
  notice: byId<HTMLParagraphElement>('notice'),
  status: byId<HTMLParagraphElement>('status'),
  loss: document.getElementById('loss') as unknown as SVGSVGElement,
  answers: byId<HTMLTableElement>('answers'),
};

function setStatus(status: KeelPageState['status'], message: string): void {
  state.status = status;
  state.message = message;
  ui.status.textContent = message;
  ui.status.classList.toggle('error', status === 'error');
}

function fail(e: unknown): void {
  const text = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  state.error = text;
  setStatus('error', text);
  ui.train.disabled = true;
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`fetch ${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function fetchModel(): Promise<ModelBytes> {
  const [config, safetensors, tokenizer] = await Promise.all(['model/config.json', 'model/model.safetensors', 'model/tokenizer.json'].map(fetchBytes));
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { configJson: text(config!), safetensors: safetensors!, tokenizerJson: text(tokenizer!) };
}

/** A CHW [0, 1] image as a small canvas. */
function imageCanvas(chw: Float32Array): HTMLCanvasElement {
  const side = Math.round(Math.sqrt(chw.length / 3));
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = side;
  const ctx = canvas.getContext('2d');
  if (!ctx) return canvas;
  const img = ctx.createImageData(side, side);
  const plane = side * side;
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) img.data[4 * i + c] = Math.round(255 * chw[c * plane + i]!);
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

function showAnswers(r: RunResult): void {
  const row = (cells: (string | Node)[], tag: 'td' | 'th', classes: string[] = []) => {
    const tr = document.createElement('tr');
    cells.forEach((c, i) => {
      const cell = document.createElement(tag);
      cell.append(c);
      if (classes[i]) cell.className = classes[i]!;
      tr.append(cell);
    });
    return tr;
  };
  const mark = (a: Answer) => (normalizeAnswer(a.prediction) === normalizeAnswer(a.answer) ? 'ok' : '');
  ui.answers.replaceChildren(row(['digit', 'set', 'answer', 'before', `after ${r.steps} steps`], 'th'));
  r.before.forEach((b, i) => {
    const a = r.after[i]!;
    ui.answers.append(row([imageCanvas(r.images[i]!), b.split === 'train' ? 'trained on' : 'held out', b.answer, b.prediction || '∅', a.prediction || '∅'], 'td', ['', '', '', mark(b), mark(a)]));
  });
}

function readForm(): { strategy: StrategyName; steps: number; seed: number } {
  const strategy = ui.strategy.value as StrategyName;
  const steps = Number(ui.steps.value);
  const seed = Number(ui.seed.value);
  if (!Number.isInteger(steps) || steps < 1 || steps > 1000) throw new Error(`steps must be an integer in [1, 1000], got ${ui.steps.value}`);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`seed must be an integer ≥ 0, got ${ui.seed.value}`);
  return { strategy, steps, seed };
}

async function train(rt: Runtime, files: ModelBytes): Promise<void> {
  const form = readForm();
  const why = state.unavailable[form.strategy];
  if (why) throw new Error(why);
  for (const c of [ui.train, ui.strategy, ui.steps, ui.seed]) c.disabled = true;
  state.losses = [];
  state.error = null;
  drawLossChart(ui.loss, [], form.steps);
  setStatus('training', `training ${form.strategy}…`);
  try {
    const r = await runSession(rt, files, {
      ...form,
      onStatus: (text) => setStatus('training', `${form.strategy}: ${text}`),
      onStep: (_, loss) => {
        state.losses.push(loss);
        drawLossChart(ui.loss, state.losses, form.steps);
      },
    });
    showAnswers(r);
    const { images: _, ...numbers } = r;
    state.result = numbers;
    state.runs++;
    const pct = (x: number) => `${Math.round(100 * x)} %`;
    setStatus(
      'done',
      `${r.strategy} (${r.trainable.toLocaleString('en')} trainable) · ${r.steps} steps in ${(r.ms / 1000).toFixed(1)} s · ` +
        `loss ${r.losses[0]!.toFixed(3)} → ${r.losses.at(-1)!.toFixed(3)} · trained digits right: ${pct(r.accuracy.before)} → ${pct(r.accuracy.after)} · ${r.adapter}`,
    );
  } finally {
    for (const c of [ui.train, ui.strategy, ui.steps, ui.seed]) c.disabled = false;
  }
}

async function start(): Promise<void> {
  const query = new URLSearchParams(location.search);
  for (const [key, input] of [['strategy', ui.strategy], ['steps', ui.steps], ['seed', ui.seed]] as const) {
    const v = query.get(key);
    if (v !== null) input.value = v;
  }
  for (const s of STRATEGIES) {
    const why = unavailableReason(s);
    if (!why) continue;
    state.unavailable[s] = why;
    const option = ui.strategy.querySelector<HTMLOptionElement>(`option[value="${s}"]`);
    if (option) {
      option.disabled = true;
      option.textContent += ' (not available)';
    }
  }
  const notes = Object.values(state.unavailable);
  ui.notice.textContent = notes.join(' ');
  if (state.unavailable[ui.strategy.value as StrategyName]) ui.strategy.value = STRATEGIES.find((s) => !state.unavailable[s]) ?? 'lora';

  setStatus('loading', 'starting WebGPU…');
  const rt = await getRuntime();
  const a = rt.info.adapter;
  state.device = [a.vendor, a.architecture, a.device || a.description].filter(Boolean).join(' ');
  setStatus('loading', `fetching the base model (${state.device})…`);
  const files = await fetchModel();
  drawLossChart(ui.loss, [], Number(ui.steps.value) || 1);
  setStatus('ready', `ready on ${state.device}: pick a method and press Train`);
  ui.train.disabled = false;
  ui.train.addEventListener('click', () => {
    train(rt, files).catch(fail);
  });
  if (query.get('autorun') === '1') ui.train.click();
}

start().catch(fail);
