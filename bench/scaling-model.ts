/**
 * The on-paper scaling model of data-parallel training (src/model/scaling.ts) for the paper's models:
 * gradient bytes per optimizer step, allreduce time on assumed A100 clusters, compute time per step,
 * communication's share of the step with and without overlap, and AdamW state per rank with ZeRO-1.
 * Nothing is measured: every hardware figure below is an assumption, stated with its source.
 * Prints markdown tables (pasted into docs/distributed-scaling.md).
 * Run: npx tsc -p tsconfig.json && node dist/bench/scaling-model.js [pipelines/paper-*.yaml ...]
 */
import { basename, join } from 'node:path';
import { PROJECT_ROOT } from '../src/artifacts/index.js';
import { countFlops, type ModelConfig } from '../src/model/index.js';
import {
  adamStateBytes,
  allreduceSeconds,
  commShare,
  computeSeconds,
  gpus,
  gradientBytes,
  type Cluster,
  type ComputeAssumption,
} from '../src/model/scaling.js';
import { loadPipeline } from '../src/pipeline/load.js';
import { estimateTrainingMemory } from '../src/train/memory.js';

const GB = 1e9;

// NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020) and the A100 datasheet: third-generation
// NVLink, 12 links, 600 GB/s total per GPU = 300 GB/s each direction; BF16 Tensor Core peak 312
// TFLOP/s (dense). Assumption: a ring reaches the link's peak. Measured bus bandwidth is lower (a public
// nccl-tests run on 8 A100s reached 195 GB/s one way), so the NVLink times below are lower bounds.
const NVLINK3 = 300 * GB;
const A100_BF16_PEAK = 312e12;
// HDR InfiniBand: 200 Gb/s per port = 25 GB/s each direction. A DGX A100 has 8 such ports for compute
// traffic (one per GPU, DGX A100 datasheet); the brief's case is one port per node.
const HDR_IB = 25 * GB;

export const CLUSTERS: Cluster[] = [
  { name: '8 GPUs, 1 node, NVLink', nodes: 1, gpusPerNode: 8, intraNode: NVLINK3, interNode: HDR_IB },
  { name: '8 GPUs, 8 nodes × 1, IB 1×200 Gb/s', nodes: 8, gpusPerNode: 1, intraNode: NVLINK3, interNode: HDR_IB },
  { name: '64 GPUs, 8 nodes × 8, NVLink + IB 1×200 Gb/s per node', nodes: 8, gpusPerNode: 8, intraNode: NVLINK3, interNode: HDR_IB },
  { name: '64 GPUs, 8 nodes × 8, NVLink + IB 8×200 Gb/s per node (DGX A100)', nodes: 8, gpusPerNode: 8, intraNode: NVLINK3, interNode: 8 * HDR_IB },
];

// The paper: 1M-token batches of 4096-token sequences (pipelines/paper-*.yaml headers, DESIGN.md §1);
// 256 × 4096 = 1,048,576 tokens. MFU 40%: an assumption. The paper's own 0.3B throughput on A100s
// (dense 29.0K, 32E 20.8K tokens/s/GPU, DESIGN.md §1) implies about 30% against these FLOP counts
// (printed below), so 40% is the optimistic side: a slower step makes communication's share smaller.
export const COMPUTE: ComputeAssumption = { peak: A100_BF16_PEAK, mfu: 0.4, tokens: 256 * 4096, seq: 4096 };
const PAPER_TOKENS_PER_GPU_S: Record<string, number> = { 'paper-0.3b-dense': 29.0e3, 'paper-0.3b-8e': 24.5e3, 'paper-0.3b-16e': 22.9e3, 'paper-0.3b-32e': 20.8e3 };

const DEFAULT_PIPELINES = ['0.3b-dense', '0.3b-8e', '0.3b-16e', '0.3b-32e', '1.5b-dense', '1.5b-8e', '1.5b-16e', '1.5b-32e'].map((m) => join(PROJECT_ROOT, 'pipelines', `paper-${m}.yaml`));

interface Model {
  name: string;
  config: ModelConfig;
}

function models(files: string[]): Model[] {
  return files.flatMap((file) => loadPipeline(file).runs.map((run) => ({ name: basename(file, '.yaml'), config: run.model })));
}

const f = (x: number, digits = 2) => x.toFixed(digits);
const ms = (s: number) => f(1000 * s, s < 0.1 ? 1 : 0);
const pct = (x: number) => `${f(100 * x, 1)} %`;

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

function paramsTable(ms_: Model[]): string {
  return table(
    ['model', 'total P', 'active P', 'total / active', 'fp32 gradient (4P)', 'bf16 gradient (2P)', 'train GFLOP/token', 'paper tokens/s/GPU → implied MFU'],
    ms_.map(({ name, config }) => {
      const g = gradientBytes(config);
      const flops = countFlops(config, COMPUTE.seq).train;
      const paper = PAPER_TOKENS_PER_GPU_S[name];
      return [
        name,
        `${f(g.total / 1e9, 3)} B`,
        `${f(g.active / 1e9, 3)} B`,
        `${f(g.total / g.active, 1)}×`,
        `${f(g.fp32 / GB)} GB`,
        `${f(g.bf16 / GB)} GB`,
        f(flops / 1e9),
        paper ? `${f(paper / 1e3, 1)}K → ${pct((paper * flops) / A100_BF16_PEAK)}` : '—',
      ];
    }),
  );
}

/** Per model and cluster: allreduce time (fp32, bf16), compute time, and communication's share. */
function stepTable(ms_: Model[], cluster: Cluster): string {
  const n = gpus(cluster);
  return table(
    ['model', 'compute ms/step', 'allreduce ms fp32', 'allreduce ms bf16', 'comm share fp32: serial', 'overlapped', 'comm share bf16: serial', 'overlapped'],
    ms_.map(({ name, config }) => {
      const g = gradientBytes(config);
      const compute = computeSeconds(config, COMPUTE, n);
      const [c32, c16] = [allreduceSeconds(g.fp32, cluster), allreduceSeconds(g.bf16, cluster)];
      const [s32, s16] = [commShare(c32, compute), commShare(c16, compute)];
      return [name, ms(compute), ms(c32), ms(c16), pct(s32.serial), pct(s32.overlapped), pct(s16.serial), pct(s16.overlapped)];
    }),
  );
}

/** Per-rank resident bytes of weights, gradients and AdamW moments, without and with ZeRO-1. */
function memoryTable(ms_: Model[]): string {
  return table(
    ['model', 'AdamW m+v (8P)', 'per rank: plain DP (4P + 4P + 8P)', 'ZeRO-1, N=8', 'ZeRO-1, N=64', "lory's accounting, ZeRO-1 N=64"],
    ms_.map(({ name, config }) => {
      const P = gradientBytes(config).total;
      const zero = (n: number) => 4 * P + 4 * P + adamStateBytes(config, n, true);
      const lory = estimateTrainingMemory(config, { microBatch: 1, seq: COMPUTE.seq, accumulation: 1 });
      const loryZero = lory.weights + lory.gradients + lory.optimizer / 64;
      const gb = (b: number) => `${f(b / GB, 1)} GB${b > 80 * GB ? ' (> 80)' : ''}`;
      return [name, gb(adamStateBytes(config, 1, false)), gb(zero(1)), gb(zero(8)), gb(zero(64)), gb(loryZero)];
    }),
  );
}

function main(): void {
  const files = process.argv.slice(2);
  const ms_ = models(files.length ? files : DEFAULT_PIPELINES);
  const out = [
    `Assumptions: A100 bf16 peak ${A100_BF16_PEAK / 1e12} TFLOP/s at MFU ${COMPUTE.mfu * 100} %; global batch ${COMPUTE.tokens.toLocaleString('en')} tokens ` +
      `(sequences of ${COMPUTE.seq}); NVLink ${NVLINK3 / GB} GB/s and IB ${HDR_IB / GB} GB/s per link, one direction; bandwidth only (no latency).`,
    '',
    '### Parameters and gradient bytes per optimizer step',
    '',
    paramsTable(ms_),
  ];
  for (const c of CLUSTERS) out.push('', `### ${c.name}`, '', stepTable(ms_, c));
  out.push('', '### Per-rank memory of weights, gradients and AdamW state (fp32; activations not included)', '', memoryTable(ms_));
  process.stdout.write(`${out.join('\n')}\n`);
}

main();
