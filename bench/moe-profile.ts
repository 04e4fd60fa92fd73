/**
 * Where a train step's time goes (issue 13): ORT's profiler (SessionOptions.profileFilePrefix) over a
 * whole train step of the dense model, Lory `custom` and Lory `standard`, printed per op type and per
 * model part (attention, routing, merged FFN, AdamW, …, forward and backward apart).
 *
 *   node dist/bench/moe-profile.js [--config tiny|small|issue5] [--steps 3] [--threads 2] [--top 12]
 *
 * The three variants' steps alternate (one process). The first step of each (arena growth, first-run
 * allocations) is left out; figures are the mean per step of the remaining ones. Profiling times each kernel (wall clock inside ORT), so on a shared machine they
 * include neighbours' interference alike for every variant; read shares, not absolute times.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readProfile, sumBy, type NodeRun } from '../src/runtime/index.js';
import { prepareStep, stepShape, type StepImpl } from './moe-configs.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

/**
 * The model part a node belongs to, from the graph builder's scoped node names:
 * `model/layer3/moe/routing/…`, `grad/model/layer3/attn/…`, `optimizer/clip/…`, `optimizer/<param>/…`.
 */
export function modelPart(node: string, op: string): string {
  const backward = node.startsWith('grad/');
  const path = node.replace(/^grad\//, '').replace(/^model\//, '').split('/');
  const dir = backward ? 'bwd' : 'fwd';
  if (path[0] === 'optimizer') {
    if (path[1] === 'clip') return 'optimizer: grad-norm clip';
    if (path[1] === 'schedule') return 'optimizer: schedule';
    return /\.ffn\.w_(gate|up|down)$/.test(path[1] ?? '') ? 'optimizer: AdamW (FFN / expert weights)' : 'optimizer: AdamW (other params)';
  }
  if (/^layer\d+$/.test(path[0] ?? '')) {
    const sub = path[1] ?? '';
    if (sub === 'moe') {
      if (path[2] === 'routing') return `${dir} routing`;
      return `${dir} merged FFN`;
    }
    if (sub === 'ffn') return `${dir} dense FFN`;
    if (sub === 'attn') return `${dir} attention`;
    return `${dir} norms + residuals`;
  }
  if (path[0] === 'embed' || path[0] === 'head' || path[0] === 'loss') return `${dir} ${path[0]}`;
  // Unscoped nodes: ORT's own (fusions, the loss's expansion) or graph glue; named by op type.
  return `${dir} other (${op})`;
}

const IMPLS: StepImpl[] = ['dense', 'custom', 'standard'];

/** Profiles the three variants side by side: their steps alternate, so a busy neighbour slows them alike. */
async function profileVariants(config: string, steps: number, threads: number, dir: string): Promise<Map<StepImpl, NodeRun[]>> {
  const prepared = [];
  try {
    for (const impl of IMPLS) prepared.push(await prepareStep(stepShape(config), impl, { intraOpThreads: threads, profileFilePrefix: join(dir, impl) }));
    for (let i = 0; i < steps + 1; i++) for (let k = 0; k < prepared.length; k++) await prepared[(k + i) % prepared.length]!.run();
    const result = new Map<StepImpl, NodeRun[]>();
    prepared.forEach((p, k) => {
      const file = p.trainer.endProfiling().step;
      if (!file) throw new Error('ORT wrote no profile for the step graph');
      result.set(IMPLS[k]!, readProfile(file).filter((r) => r.run >= 1));
    });
    return result;
  } finally {
    for (const p of prepared) p.dispose();
  }
}

async function main(): Promise<void> {
  const config = arg('config', 'tiny');
  const steps = Number(arg('steps', '3'));
  const threads = Number(arg('threads', '2'));
  const top = Number(arg('top', '12'));
  const s = stepShape(config);
  console.log(
    `# ORT profile of one train step, config ${config} (d ${s.d}, ${s.layers} layers, seq ${s.seq}, batch ${s.batch}, E ${s.E}, T ${s.T}); ` +
      `${threads} intra-op threads; mean over ${steps} steps after one warm-up`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'lory-profile-'));
  try {
    const totals = new Map<StepImpl, number>();
    const profiles = await profileVariants(config, steps, threads, dir);
    for (const impl of IMPLS) {
      const runs = profiles.get(impl)!;
      const total = runs.reduce((a, r) => a + r.durUs, 0) / steps;
      totals.set(impl, total);
      const ms = (us: number) => (us / steps / 1000).toFixed(1);
      const pct = (us: number) => ((100 * us) / steps / total).toFixed(1);
      console.log(`\n## ${impl}: ${(total / 1000).toFixed(0)} ms of kernel time per step\n`);
      console.log('| model part | ms/step | share |\n|---|---|---|');
      for (const p of sumBy(runs, (r) => modelPart(r.node, r.op))) console.log(`| ${p.key} | ${ms(p.us)} | ${pct(p.us)}% |`);
      console.log(`\n| op type (top ${top}) | ms/step | share | nodes/step |\n|---|---|---|---|`);
      for (const p of sumBy(runs, (r) => r.op).slice(0, top)) console.log(`| ${p.key} | ${ms(p.us)} | ${pct(p.us)}% | ${p.count / steps} |`);
    }
    const ideal = 1 + s.E / s.T;
    console.log(
      `\nKernel time vs dense: custom ${(totals.get('custom')! / totals.get('dense')!).toFixed(2)}x, standard ${(totals.get('standard')! / totals.get('dense')!).toFixed(2)}x ` +
        `(ideal 1 + E/T = ${ideal.toFixed(3)}x)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
