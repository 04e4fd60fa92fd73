/**
 * The tables of docs/RESULTS.md from the reports that `bin/lory run pipelines/repro.yaml` writes:
 *   node dist/bench/seed-stats.js work/repro
 * reads perplexity.json in every folder of <dir> whose name starts with 'eval' (reports of
 * `lory eval perplexity -o`) and <dir>/experts-<run>/routing-stats.json (`lory inspect-experts -o`),
 * where runs are named <config>-s<seed>, and prints Markdown:
 *   - per-domain, total and macro perplexity, mean ± sample standard deviation over seeds;
 *   - paired comparisons: for each seed the relative change of macro (and total) perplexity of A
 *     against B, how many seeds it holds in, how many (domain, seed) pairs, and a two-sided paired
 *     t-test on the per-seed differences of macro mean NLL (log perplexity);
 *   - expert specialisation per layer and seed, and which layer is strongest.
 * Nothing is trained or evaluated here: it only reads what those commands wrote, so it is exact and quick.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { PerplexityReport, PerplexityResult } from '../src/eval/perplexity.js';
import type { ExpertReport } from '../src/inspect/inspect.js';

/** One evaluated model: config name, seed, routing mode. */
interface Entry {
  config: string;
  seed: number;
  routing: string;
  result: PerplexityResult;
}

const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
/** Sample standard deviation (n − 1). */
const sd = (x: number[]) => {
  if (x.length < 2) return NaN;
  const m = mean(x);
  return Math.sqrt(x.reduce((a, b) => a + (b - m) ** 2, 0) / (x.length - 1));
};

/** ln Γ (Lanczos, g = 7). */
function lnGamma(z: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
  if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - lnGamma(1 - z);
  z -= 1;
  let x = c[0]!;
  for (let i = 1; i < 9; i++) x += c[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(x);
}

/** Regularised incomplete beta I_x(a, b) by Lentz's continued fraction (Numerical Recipes' betacf). */
function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
  if (x > (a + 1) / (a + b + 2)) return 1 - incompleteBeta(1 - x, b, a);
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  d = Math.abs(d) < tiny ? tiny : d;
  d = 1 / d;
  let f = d;
  for (let m = 1; m <= 300; m++) {
    for (const num of [(m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m)), (-(a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))]) {
      d = 1 + num * d;
      d = Math.abs(d) < tiny ? tiny : d;
      c = 1 + num / c;
      c = Math.abs(c) < tiny ? tiny : c;
      d = 1 / d;
      f *= c * d;
    }
    if (Math.abs(c * d - 1) < 1e-15) break;
  }
  return (front * f) / a;
}

/** Two-sided p of Student's t with df degrees of freedom. */
const tTwoSided = (t: number, df: number) => incompleteBeta(df / (df + t * t), df / 2, 0.5);

/** Paired t-test on differences d (H0: mean 0). */
function pairedT(d: number[]): { t: number; df: number; p: number } {
  const n = d.length;
  const s = sd(d);
  const t = mean(d) / (s / Math.sqrt(n));
  return { t, df: n - 1, p: n < 2 ? NaN : s === 0 ? 0 : tTwoSided(t, n - 1) };
}

/** Two-sided exact sign test: k of n differences on one side. */
function signTest(k: number, n: number): number {
  const binom = (n: number, r: number) => {
    let c = 1;
    for (let i = 1; i <= r; i++) c = (c * (n - r + i)) / i;
    return c;
  };
  const tail = Math.min(k, n - k);
  let p = 0;
  for (let r = 0; r <= tail; r++) p += binom(n, r) / 2 ** n;
  return Math.min(1, 2 * p);
}

const pct = (logRatio: number) => {
  const v = (Math.exp(logRatio) - 1) * 100;
  return `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(1)}%`;
};
const fmtP = (p: number) => (Number.isNaN(p) ? '–' : p < 0.001 ? p.toExponential(1) : p.toFixed(3));

/**
 * perplexity.json of every folder <dir>/eval… (the pipeline's eval stage writes <dir>/eval; per-seed
 * `lory eval perplexity -o <dir>/eval-s<seed>` reports work the same). A (run, routing) found in two
 * reports must have the same numbers (evaluation is deterministic), else this stops.
 */
function load(dir: string) {
  const files = readdirSync(dir)
    .filter((f) => /^eval/.test(f) && existsSync(join(dir, f, 'perplexity.json')))
    .sort()
    .map((f) => join(dir, f, 'perplexity.json'));
  if (!files.length) throw new Error(`no perplexity.json in ${dir}/eval…: evaluate the runs first (docs/RESULTS.md)`);
  const entries: Entry[] = [];
  for (const file of files) {
    const report = JSON.parse(readFileSync(file, 'utf8')) as PerplexityReport;
    for (const result of report.results) {
      const name = basename(result.checkpoint.path); // the run directory as given on the command line
      const m = /^(.*)-s(\d+)$/.exec(name);
      if (!m) throw new Error(`${file}: run '${name}' is not named <config>-s<seed>`);
      const e = { config: m[1]!, seed: Number(m[2]), routing: result.routing, result };
      const dup = entries.find((x) => x.config === e.config && x.seed === e.seed && x.routing === e.routing);
      if (dup) {
        if (dup.result.total.nll !== result.total.nll || dup.result.checkpoint.step !== result.checkpoint.step) throw new Error(`${file}: ${name} [${result.routing}] differs from another report`);
        continue;
      }
      entries.push(e);
    }
  }
  return { files, entries };
}

/** A model kind: config plus routing, e.g. 'lory8-similarity [segment]'; dense and token-level runs have one routing. */
const label = (config: string, routing: string) => (routing === 'segment' || routing === 'prompt' ? `${config} [${routing}]` : config);

function main() {
  const args = process.argv.slice(2);
  if (args.length !== 1) {
    console.error('usage: node dist/bench/seed-stats.js <pipeline out dir, e.g. work/repro>');
    process.exit(2);
  }
  const dir = args[0]!;
  const { files, entries } = load(dir);
  console.log(`(from ${files.join(', ')})\n`);
  const seeds = [...new Set(entries.map((e) => e.seed))].sort((a, b) => a - b);
  const labels = [...new Set(entries.map((e) => label(e.config, e.routing)))];
  const get = (lab: string, seed: number) => entries.find((e) => label(e.config, e.routing) === lab && e.seed === seed)?.result;
  const domains = entries[0]!.result.rows.map((r) => r.name);

  // ---- perplexity, mean ± sd over seeds
  console.log(`## Perplexity per held-out domain, mean ± sd over seeds ${seeds.join(', ')}\n`);
  console.log(`| model | seeds | ${domains.join(' | ')} | total | macro |`);
  console.log(`| :--- | ---: | ${domains.map(() => '---:').join(' | ')} | ---: | ---: |`);
  for (const lab of labels) {
    const rs = seeds.map((s) => get(lab, s)).filter((r): r is PerplexityResult => !!r);
    const cell = (x: number[]) => (x.length > 1 ? `${mean(x).toFixed(1)} ± ${sd(x).toFixed(1)}` : mean(x).toFixed(1));
    const cols = domains.map((d) => cell(rs.map((r) => r.rows.find((row) => row.name === d)!.perplexity)));
    console.log(`| ${lab} | ${rs.length} | ${cols.join(' | ')} | ${cell(rs.map((r) => r.total.perplexity))} | ${cell(rs.map((r) => r.macro.perplexity))} |`);
  }

  // ---- per-seed totals
  console.log(`\n## Macro / total perplexity and bits per byte per seed\n`);
  console.log(`| model | ${seeds.map((s) => `seed ${s} macro`).join(' | ')} | ${seeds.map((s) => `seed ${s} total`).join(' | ')} | total bits/byte, mean ± sd |`);
  console.log(`| :--- | ${seeds.map(() => '---:').join(' | ')} | ${seeds.map(() => '---:').join(' | ')} | ---: |`);
  for (const lab of labels) {
    const rs = seeds.map((s) => get(lab, s));
    const bpb = rs.filter((r): r is PerplexityResult => !!r).map((r) => r.total.bitsPerByte);
    console.log(`| ${lab} | ${rs.map((r) => (r ? r.macro.perplexity.toFixed(2) : '–')).join(' | ')} | ${rs.map((r) => (r ? r.total.perplexity.toFixed(2) : '–')).join(' | ')} | ${mean(bpb).toFixed(3)} ± ${sd(bpb).toFixed(3)} |`);
  }

  // ---- paired comparisons
  // Each comparison is a per-seed difference of log perplexity (mean NLL): A − B, or for an
  // interaction (A − B) − (C − D). Negative: A better than B.
  type Cmp = { name: string; terms: [string, number][] };
  const cmp = (name: string, a: string, b: string): Cmp => ({ name, terms: [[a, 1], [b, -1]] });
  const inter = (name: string, a: string, b: string, c: string, d: string): Cmp => ({ name, terms: [[a, 1], [b, -1], [c, -1], [d, 1]] });
  const comparisons: Cmp[] = [
    cmp('Lory 8E similarity vs dense', 'lory8-similarity [segment]', 'dense'),
    cmp('Lory 16E similarity vs dense', 'lory16-similarity [segment]', 'dense'),
    cmp('Lory 16E vs Lory 8E (similarity)', 'lory16-similarity [segment]', 'lory8-similarity [segment]'),
    cmp('top-1 vs dense', 'top1', 'dense'),
    cmp('expert choice vs dense', 'ec', 'dense'),
    cmp('Lory 8E vs top-1', 'lory8-similarity [segment]', 'top1'),
    cmp('Lory 8E vs expert choice', 'lory8-similarity [segment]', 'ec'),
    cmp('Lory 8E [prompt] vs top-1', 'lory8-similarity [prompt]', 'top1'),
    cmp('top-1 vs expert choice', 'top1', 'ec'),
    cmp('Lory 8E similarity vs random batches', 'lory8-similarity [segment]', 'lory8-random [segment]'),
    cmp('dense similarity vs random batches', 'dense', 'dense-random'),
    cmp('Lory 8E random vs dense-random', 'lory8-random [segment]', 'dense-random'),
    inter('interaction: Lory-vs-dense gain, similarity ÷ random batches', 'lory8-similarity [segment]', 'dense', 'lory8-random [segment]', 'dense-random'),
    cmp('prompt vs segment routing, Lory 8E similarity', 'lory8-similarity [prompt]', 'lory8-similarity [segment]'),
    cmp('prompt vs segment routing, Lory 8E random', 'lory8-random [prompt]', 'lory8-random [segment]'),
    cmp('prompt vs segment routing, Lory 16E similarity', 'lory16-similarity [prompt]', 'lory16-similarity [segment]'),
  ];
  console.log(`\n## Paired comparisons per seed (macro perplexity unless stated; negative: the first is better)\n`);
  console.log(
    'Per seed: relative change of macro perplexity, exp(Δ mean NLL) − 1 (an interaction: the ratio of the two ratios − 1). ' +
      '"holds": seeds with the mean\'s sign. "domain × seed": (domain, seed) pairs with the mean\'s sign. ' +
      `t: two-sided paired t-test on the per-seed Δ macro mean NLL (df = seeds − 1); sign: exact two-sided sign test over seeds (with ${seeds.length} seeds its smallest possible p is ${fmtP(signTest(0, seeds.length))}).\n`,
  );
  console.log(`| comparison | ${seeds.map((s) => `seed ${s}`).join(' | ')} | mean | holds (macro) | total, mean | holds (total) | domain × seed | t | p (t) | p (sign) |`);
  console.log(`| :--- | ${seeds.map(() => '---:').join(' | ')} | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`);
  for (const c of comparisons) {
    const usable = seeds.filter((s) => c.terms.every(([lab]) => get(lab, s)));
    if (!usable.length) continue;
    const diff = (pick: (r: PerplexityResult) => number) => usable.map((s) => c.terms.reduce((acc, [lab, w]) => acc + w * pick(get(lab, s)!), 0));
    const dm = diff((r) => r.macro.meanNll);
    const dt = diff((r) => r.total.meanNll);
    const dd = domains.flatMap((d) => diff((r) => r.rows.find((row) => row.name === d)!.meanNll));
    const sign = Math.sign(mean(dm));
    const holds = dm.filter((x) => Math.sign(x) === sign).length;
    const holdsT = dt.filter((x) => Math.sign(x) === Math.sign(mean(dt))).length;
    const holdsD = dd.filter((x) => Math.sign(x) === sign).length;
    const t = pairedT(dm);
    const perSeed = seeds.map((s) => {
      const i = usable.indexOf(s);
      return i < 0 ? '–' : pct(dm[i]!);
    });
    console.log(
      `| ${c.name} | ${perSeed.join(' | ')} | ${pct(mean(dm))} | ${holds}/${usable.length} | ${pct(mean(dt))} | ${holdsT}/${usable.length} | ${holdsD}/${dd.length} | ${Number.isFinite(t.t) ? t.t.toFixed(2) : '–'} | ${fmtP(t.p)} | ${fmtP(signTest(holds, usable.length))} |`,
    );
  }

  // ---- expert specialisation
  const expertRuns = [...new Set(entries.filter((e) => e.routing === 'segment').map((e) => `${e.config}-s${e.seed}`))]
    .map((run) => ({ run, file: join(dir, `experts-${run}`, 'routing-stats.json') }))
    .filter((x) => existsSync(x.file));
  if (expertRuns.length) {
    console.log(`\n## Expert specialisation I(D;X)/H(D) per layer (÷ shuffled-label p95 in parentheses), segment routing\n`);
    const layersOf = (r: ExpertReport) => r.layers.length;
    const first = JSON.parse(readFileSync(expertRuns[0]!.file, 'utf8')) as ExpertReport;
    const L = layersOf(first);
    const layerCols = Array.from({ length: L }, (_, l) => `layer ${l}`);
    console.log(`| run | ${layerCols.join(' | ')} | strongest layer | every layer > p95 | load balance per layer |`);
    console.log(`| :--- | ${layerCols.map(() => '---:').join(' | ')} | ---: | ---: | :--- |`);
    const byConfig = new Map<string, number[][]>();
    for (const { run, file } of expertRuns) {
      const r = JSON.parse(readFileSync(file, 'utf8')) as ExpertReport;
      const s = r.layers.map((l) => l.specialisation ?? NaN);
      const best = s.indexOf(Math.max(...s));
      const above = r.layers.every((l) => l.chance && (l.specialisation ?? 0) > l.chance.p95);
      const cfg = run.replace(/-s\d+$/, '');
      byConfig.set(cfg, [...(byConfig.get(cfg) ?? []), s]);
      console.log(`| ${run} | ${r.layers.map((l) => `${(l.specialisation ?? NaN).toFixed(4)} (${l.chance ? ((l.specialisation ?? NaN) / l.chance.p95).toFixed(1) : '–'}×)`).join(' | ')} | ${best} | ${above ? 'yes' : 'no'} | ${r.layers.map((l) => l.loadBalance.toFixed(2)).join(', ')} |`);
    }
    console.log(`\n| config | seeds | ${layerCols.join(' | ')} | layer 0 strongest |`);
    console.log(`| :--- | ---: | ${layerCols.map(() => '---:').join(' | ')} | ---: |`);
    for (const [cfg, rows] of byConfig) {
      const cols = layerCols.map((_, l) => {
        const x = rows.map((r) => r[l]!);
        return x.length > 1 ? `${mean(x).toFixed(4)} ± ${sd(x).toFixed(4)}` : x[0]!.toFixed(4);
      });
      const first0 = rows.filter((r) => r.indexOf(Math.max(...r)) === 0).length;
      console.log(`| ${cfg} | ${rows.length} | ${cols.join(' | ')} | ${first0}/${rows.length} |`);
    }
    // similarity vs random specialisation, per seed and layer
    const sim = byConfig.get('lory8-similarity');
    const rnd = byConfig.get('lory8-random');
    if (sim && rnd && sim.length === rnd.length) {
      const n = sim.length;
      const counts = layerCols.map((_, l) => sim.filter((r, i) => r[l]! > rnd[i]![l]!).length);
      console.log(`\nLory 8E similarity more specialised than Lory 8E random (same seed), per layer: ${counts.map((k, l) => `layer ${l} ${k}/${n}`).join(', ')}`);
    }
  }
}

main();
