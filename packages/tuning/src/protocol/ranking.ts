/**
 * Does the benchmark's verdict depend on the architecture? Per task, the strategies are ranked by H
 * (the harmonic mean of target and upstream scores) on each architecture, and every pair of
 * architectures is compared with Kendall's rank correlation:
 *   tau-b = (C − D) / √((n₀ − n_x)(n₀ − n_y))
 * over the n₀ = n(n−1)/2 pairs of strategies, C concordant (ordered alike on both), D discordant,
 * n_x / n_y the pairs tied on one architecture. tau-b is 1 for the same order, −1 for the reversed
 * one, ~0 for unrelated ones, and stays in [−1, 1] with ties (an exact-match score on a few hundred
 * examples ties often). The mean over tasks and pairs becomes one sentence (TAU_LARGELY, TAU_PARTLY).
 *
 * Only strategies that ran on every architecture for a task are ranked for it. Pure: no I/O.
 * Non-goals: significance tests (with ≤ 19 strategies and one seed a p-value would mislead more
 * than the plain tau), weighting tasks.
 */

export interface RankedRow {
  arch: string;
  task: string;
  strategy: string;
  H: number;
}

/** One architecture's order on one task, best H first; tied H share a rank (1, 2, 2, 4). */
export interface ArchRanking {
  arch: string;
  order: { strategy: string; H: number; rank: number }[];
}

export interface TaskAgreement {
  task: string;
  /** The strategies ranked: those that ran on every architecture, in first-seen order. */
  strategies: string[];
  rankings: ArchRanking[];
  /** tau-b of every pair of architectures; null when undefined (fewer than 2 strategies, or one side all tied). */
  pairs: { a: string; b: string; tau: number | null }[];
}

export interface RankingAgreement {
  archs: string[];
  tasks: TaskAgreement[];
  /** Mean of every defined tau; null when none is. */
  meanTau: number | null;
  /** One plain sentence on whether the ranking holds across architectures. */
  verdict: string;
}

/** Mean tau at or above which the ranking "largely holds". */
export const TAU_LARGELY = 0.6;
/** Mean tau at or above which it "holds in part"; below, it does not hold. */
export const TAU_PARTLY = 0.2;

/** Kendall's tau-b of paired values (file comment); null when it is undefined. */
export function kendallTau(x: readonly number[], y: readonly number[]): number | null {
  if (x.length !== y.length) throw new Error(`kendallTau: the lists must pair up, got ${x.length} and ${y.length} values`);
  [x, y].forEach((v, k) =>
    v.forEach((e, i) => {
      if (!Number.isFinite(e)) throw new Error(`kendallTau: ${k ? 'y' : 'x'}[${i}] must be a finite number, got ${e}`);
    }),
  );
  let concordant = 0;
  let discordant = 0;
  let tiedX = 0;
  let tiedY = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const s = Math.sign(x[i]! - x[j]!) * Math.sign(y[i]! - y[j]!);
      if (x[i] === x[j]) tiedX++;
      if (y[i] === y[j]) tiedY++;
      if (s > 0) concordant++;
      else if (s < 0) discordant++;
    }
  }
  const pairs = (n * (n - 1)) / 2;
  const denominator = Math.sqrt((pairs - tiedX) * (pairs - tiedY));
  return denominator > 0 ? (concordant - discordant) / denominator : null;
}

function rankByH(arch: string, scored: { strategy: string; H: number }[]): ArchRanking {
  // stable sort: equal H keep the suite's order, and share the rank of the first of them
  const sorted = [...scored].sort((a, b) => b.H - a.H);
  const order = sorted.map((s, i) => ({ ...s, rank: i + 1 }));
  for (let i = 1; i < order.length; i++) if (order[i]!.H === order[i - 1]!.H) order[i]!.rank = order[i - 1]!.rank;
  return { arch, order };
}

/** The plain-language verdict for a mean tau (null: nothing to compare). */
export function rankingVerdict(meanTau: number | null): string {
  if (meanTau === null) return 'Kendall’s tau is undefined (fewer than two strategies ran on every architecture, or every H tied), so the ranking cannot be compared across architectures.';
  const t = meanTau.toFixed(2);
  if (meanTau >= TAU_LARGELY) return `Mean tau ${t} ≥ ${TAU_LARGELY}: the H ranking of the strategies largely holds across architectures.`;
  if (meanTau >= TAU_PARTLY) return `Mean tau ${t} is between ${TAU_PARTLY} and ${TAU_LARGELY}: the H ranking holds only in part across architectures.`;
  return `Mean tau ${t} < ${TAU_PARTLY}: the H ranking does not hold across architectures; which strategy is best depends on the connector.`;
}

/** Per task, each architecture's H ranking and tau-b between every pair (file comment). */
export function rankingAgreement(rows: readonly RankedRow[]): RankingAgreement {
  const seen = new Set<string>();
  rows.forEach((r, i) => {
    for (const k of ['arch', 'task', 'strategy'] as const) {
      if (typeof r[k] !== 'string' || r[k] === '') throw new Error(`rankingAgreement: rows[${i}].${k} must be a non-empty string, got ${JSON.stringify(r[k])}`);
    }
    if (!Number.isFinite(r.H)) throw new Error(`rankingAgreement: rows[${i}].H must be a finite number, got ${r.H}`);
    const key = JSON.stringify([r.arch, r.task, r.strategy]);
    if (seen.has(key)) throw new Error(`rankingAgreement: rows[${i}] repeats strategy '${r.strategy}' on task '${r.task}' for arch '${r.arch}'`);
    seen.add(key);
  });
  const archs = [...new Set(rows.map((r) => r.arch))];
  const taus: number[] = [];
  const tasks = [...new Set(rows.map((r) => r.task))].map((task): TaskAgreement => {
    const onTask = rows.filter((r) => r.task === task);
    const H = (arch: string, strategy: string) => onTask.find((r) => r.arch === arch && r.strategy === strategy)?.H;
    const strategies = [...new Set(onTask.map((r) => r.strategy))].filter((s) => archs.every((a) => H(a, s) !== undefined));
    const rankings = archs.map((a) => rankByH(a, strategies.map((s) => ({ strategy: s, H: H(a, s)! }))));
    const pairs: TaskAgreement['pairs'] = [];
    for (let i = 0; i < archs.length; i++) {
      for (let j = i + 1; j < archs.length; j++) {
        const [a, b] = [archs[i]!, archs[j]!];
        const tau = kendallTau(strategies.map((s) => H(a, s)!), strategies.map((s) => H(b, s)!));
        if (tau !== null) taus.push(tau);
        pairs.push({ a, b, tau });
      }
    }
    return { task, strategies, rankings, pairs };
  });
  const meanTau = taus.length ? taus.reduce((s, t) => s + t, 0) / taus.length : null;
  return { archs, tasks, meanTau, verdict: rankingVerdict(meanTau) };
}
