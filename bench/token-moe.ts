/**
 * Train-step time of the token-level MoE baselines (issue 15) against Lory and the dense model, at
 * the same E, d_ff and batch: top-k token choice (k = 2 and k = 1), expert choice (per sequence and
 * per position), Lory (standard ops, and lory's fused op where built), dense (E = 1).
 *
 * Every variant lives in one process; rounds run each once, the order rotating every round, so a busy
 * neighbour on this shared machine slows them alike. Reported: medians of wall time and of process CPU
 * time / intra-op threads (less sensitive to neighbours), and ratios against Lory (standard ops) from
 * the same run.
 *
 * Run: node dist/bench/token-moe.js [--config tiny|small] [--repeats 7] [--threads 2] [--only dense,lory-fused,top1,ec-seq]
 *
 * Memory: every variant's trainer is resident at once (parameters + AdamW moments, two buffers each:
 * 24 bytes per parameter in float32). Tiny: ~0.5 GB per MoE variant. Small: ~1.8 GB per MoE variant,
 * so run it with --only a few variants on a shared machine (the script refuses more than 8 GB).
 */
import { compileTrainStep } from '../src/graph/compile/train-step.js';
import { Trainer } from '../src/train/trainer.js';
import { resolveModelConfig, fusedOpAvailable, type ModelConfig } from '../src/model/config.js';
import { countFlops, countParams } from '../src/model/count.js';
import { loryTrainSpec } from '../src/model/model.js';
import { modelSessionOptions } from '../src/model/moe.js';
import { initParams } from '../src/model/params.js';
import { randomTokens } from '../src/model/testing.js';
import { median } from './stats.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const THREADS = Number(arg('threads', '2'));
const REPEATS = Number(arg('repeats', '7'));
const CONFIGS = {
  tiny: { vocab: 8192, d: 256, layers: 4, heads: 4, ffn: 688, seq: 256, batch: 8, E: 8, T: 64 },
  small: { vocab: 8192, d: 512, layers: 4, heads: 8, ffn: 1376, seq: 512, batch: 4, E: 8, T: 128 },
};
const NAME = arg('config', 'tiny') as keyof typeof CONFIGS;
const S = CONFIGS[NAME];
if (!S) throw new Error(`--config must be one of ${Object.keys(CONFIGS).join(', ')}`);

interface Variant {
  key: string;
  name: string;
  over: Partial<ModelConfig>;
}

const ALL: Variant[] = [
  { key: 'dense', name: 'dense (E=1)', over: { experts: 1 } },
  { key: 'lory', name: 'Lory, standard ops', over: { moe: 'lory', ffnImpl: 'standard' } },
  ...(fusedOpAvailable() ? [{ key: 'lory-fused', name: 'Lory, fused op', over: { moe: 'lory' as const, ffnImpl: 'custom' as const } }] : []),
  { key: 'top2', name: 'top-2, cf 1', over: { moe: 'top_k', topK: 2, capacityFactor: 1 } },
  { key: 'top1', name: 'top-1, cf 1', over: { moe: 'top_k', topK: 1, capacityFactor: 1 } },
  { key: 'ec-seq', name: 'expert choice, per sequence, cf 1', over: { moe: 'expert_choice', capacityFactor: 1 } },
  { key: 'ec-pos', name: 'expert choice, per position, cf 1', over: { moe: 'expert_choice', capacityFactor: 1, expertChoiceGroup: 'position' } },
];
const ONLY = arg('only', '');
const VARIANTS = ONLY ? ALL.filter((v) => ONLY.split(',').includes(v.key)) : ALL;
if (VARIANTS.length < 2) throw new Error(`--only needs at least two of: ${ALL.map((v) => v.key).join(', ')}`);

const config = (v: Variant) =>
  resolveModelConfig({ vocabSize: S.vocab, dModel: S.d, nLayers: S.layers, nHeads: S.heads, dFf: S.ffn, contextLength: S.seq, experts: S.E, segmentLength: S.T, ...v.over });

interface Prepared {
  variant: Variant;
  c: ModelConfig;
  run(): Promise<void>;
  dispose(): void;
  wall: number[];
  cpu: number[];
}

async function prepare(v: Variant): Promise<Prepared> {
  const c = config(v);
  const trainer = await Trainer.create(compileTrainStep(loryTrainSpec(c, { batch: S.batch, seq: S.seq })), initParams(c, 3), { ...modelSessionOptions(c), intraOpThreads: THREADS });
  const tokens = randomTokens(S.batch * S.seq, S.vocab, 11);
  const ids = (t: number[]) => ({ dtype: 'int64' as const, shape: [S.batch, S.seq], data: BigInt64Array.from(t, BigInt) });
  const batch = { tokens: ids(tokens), targets: ids(tokens.map((t) => (t * 7 + 3) % S.vocab)) };
  let step = 0;
  return {
    variant: v,
    c,
    run: async () => {
      const r = await trainer.step(batch, 1e-4, ++step);
      for (const d of Object.values(r.diagnostics)) d.dispose();
    },
    dispose: () => trainer.dispose(),
    wall: [],
    cpu: [],
  };
}

async function main(): Promise<void> {
  console.log(
    `# Train step, ${NAME}: ${S.layers} layers, d=${S.d}, ${S.heads} heads, d_ff ${S.ffn}, vocab ${S.vocab}, seq ${S.seq}, batch ${S.batch}, ` +
      `E=${S.E}, T=${S.T} (Lory); AdamW; float32; ${THREADS} intra-op threads; ${REPEATS} interleaved rounds`,
  );
  const stateGB = VARIANTS.reduce((a, v) => a + (24 * countParams(config(v)).total) / 1e9, 0);
  console.log(`Resident parameters + AdamW state of all variants: ${stateGB.toFixed(1)} GB`);
  if (stateGB > 8) throw new Error(`${stateGB.toFixed(1)} GB of resident state: too much for a shared machine; pick fewer variants with --only`);
  const prepared: Prepared[] = [];
  for (const v of VARIANTS) prepared.push(await prepare(v));
  for (const p of prepared) await p.run(); // warm-up: arena growth, first-run allocations
  for (let r = 0; r < REPEATS; r++) {
    for (let k = 0; k < prepared.length; k++) {
      const p = prepared[(k + r) % prepared.length]!;
      const cpu0 = process.cpuUsage();
      const start = performance.now();
      await p.run();
      p.wall.push(performance.now() - start);
      const cpu = process.cpuUsage(cpu0);
      p.cpu.push((cpu.user + cpu.system) / 1000 / THREADS);
    }
  }
  for (const p of prepared) p.dispose();
  const base = prepared.find((p) => p.variant.key === 'lory') ?? prepared.find((p) => p.variant.key === 'lory-fused') ?? prepared[0]!;
  console.log(`\nRatios against: ${base.variant.name}`);
  const [bw, bc] = [median(base.wall), median(base.cpu)];
  console.log('\n| model | active params | train MFLOP/token | wall ms/step (median) | CPU ms / threads (median) | tokens/s | wall ratio | CPU ratio |\n|---|---|---|---|---|---|---|---|');
  for (const p of prepared) {
    const [w, c] = [median(p.wall), median(p.cpu)];
    const active = countParams(p.c).active;
    const flops = countFlops(p.c, S.seq).train;
    console.log(
      `| ${p.variant.name} | ${(active / 1e6).toFixed(2)}M | ${(flops / 1e6).toFixed(1)} | ${w.toFixed(0)} | ${c.toFixed(0)} | ${((S.batch * S.seq) / (w / 1000)).toFixed(0)} | ${(w / bw).toFixed(2)}x | ${(c / bc).toFixed(2)}x |`,
    );
  }
}

await main();
