/**
 * Data parallelism on this machine: 2 ranks × 1 thread (`mpirun -np 2 lory train`) against 1 rank ×
 * 2 threads (`lory train`, threads: 2), on the same cores, data and global batch (micro_batch ×
 * accumulation 2). For tiny and small models, dense and Lory: tokens/s (median over steps after the
 * first five, then over rounds) and, for the ranks, the time in the gradient allreduce per step and
 * its share of the step (rank 0's, waiting for the other rank included), and the allreduce alone
 * (bench/allreduce-probe.ts: after a barrier). Rounds alternate the two modes so load hits both alike.
 *
 * Run: npm run bench:parallel   (or: node dist/bench/data-parallel.js [rounds] [steps])
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBatches } from '../src/batching/build-batches.js';
import { PROJECT_ROOT } from '../src/artifacts/index.js';
import { prepare } from '../src/data/prepare.js';
import { FIXTURE_TRAIN, tempDir } from '../src/data/testing.js';
import { median } from './stats.js';

const rounds = Number(process.argv[2] ?? 3);
const steps = Number(process.argv[3] ?? 30);
const LORY = join(PROJECT_ROOT, 'bin', 'lory');
const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1' };

const models: Record<string, string> = {
  'tiny dense': 'vocab_size: 2048, d_model: 128, n_layers: 4, n_heads: 4, d_ff: 384, context_length: 256, segment_length: 64, experts: 1',
  'tiny Lory 4E': 'vocab_size: 2048, d_model: 128, n_layers: 4, n_heads: 4, d_ff: 384, context_length: 256, segment_length: 64, experts: 4',
  'small dense': 'vocab_size: 2048, d_model: 256, n_layers: 6, n_heads: 4, d_ff: 768, context_length: 256, segment_length: 64, experts: 1',
  'small Lory 8E': 'vocab_size: 2048, d_model: 256, n_layers: 6, n_heads: 4, d_ff: 768, context_length: 256, segment_length: 64, experts: 8',
};

interface Run {
  tokensPerSecond: number;
  stepMs: number;
  allreduceMs?: number;
}

function run(root: string, batches: string, model: string, mode: '1×2' | '2×1', round: number): Run {
  const threads = mode === '1×2' ? 2 : 1;
  const cfg = join(root, `${model.replace(/\W+/g, '-')}-${threads}.yaml`);
  writeFileSync(cfg, `model: { ${models[model]} }\ntrain: { steps: ${steps}, micro_batch: 4, accumulation: 2, dense_warmup: 0, valid_every: 0, valid_batches: 1, checkpoint_every: 100000, threads: ${threads} }\n`);
  const out = join(root, `run-${round}-${model.replace(/\W+/g, '-')}-${threads}`);
  const args = ['train', batches, '-o', out, '-c', cfg, '-q', '--force'];
  const r = mode === '1×2' ? spawnSync(LORY, args, { encoding: 'utf8', env }) : spawnSync('mpirun', ['-np', '2', '--oversubscribe', LORY, ...args], { encoding: 'utf8', env });
  if (r.status !== 0) throw new Error(`${model} ${mode}: ${r.stderr}`);
  const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; step: number } & Run)
    .filter((l) => l.type === 'step' && l.step > 5);
  const allreduce = lines.map((l) => l.allreduceMs).filter((x): x is number => x !== undefined);
  return { tokensPerSecond: median(lines.map((l) => l.tokensPerSecond)), stepMs: median(lines.map((l) => l.stepMs)), ...(allreduce.length ? { allreduceMs: median(allreduce) } : {}) };
}

async function main(): Promise<void> {
  const root = tempDir('bench-parallel');
  const tokens = join(root, 'tokens');
  const batches = join(root, 'batches');
  await prepare({ inputs: [FIXTURE_TRAIN], out: tokens, vocabSize: 2048 });
  await buildBatches({ tokens, out: batches, strategy: 'random', seqLen: 256, validFraction: 0.05, dedup: false });
  console.log(`${rounds} rounds × ${steps} steps; global batch 4 × 2 × 256 = 2,048 tokens; medians over steps 6..${steps}, then over rounds`);
  console.log('model           1 rank × 2 threads   2 ranks × 1 thread   ratio   allreduce/step   share of step   allreduce alone (after a barrier)');
  for (const model of Object.keys(models)) {
    const a: Run[] = [];
    const b: Run[] = [];
    for (let k = 0; k < rounds; k++) {
      a.push(run(root, batches, model, '1×2', k));
      b.push(run(root, batches, model, '2×1', k));
    }
    const ta = median(a.map((r) => r.tokensPerSecond));
    const tb = median(b.map((r) => r.tokensPerSecond));
    const ar = median(b.map((r) => r.allreduceMs!));
    const share = median(b.map((r) => r.allreduceMs! / r.stepMs));
    const probe = spawnSync('mpirun', ['-np', '2', '--oversubscribe', process.execPath, join(PROJECT_ROOT, 'dist', 'bench', 'allreduce-probe.js'), models[model]!], { encoding: 'utf8', env });
    const alone = JSON.parse(probe.stdout.trim().split('\n').at(-1)!) as { tensors: number; bytes: number; ms: number };
    console.log(
      `${model.padEnd(15)} ${`${ta.toFixed(0)} tok/s`.padStart(18)}   ${`${tb.toFixed(0)} tok/s`.padStart(18)}   ${(tb / ta).toFixed(2).padStart(5)}   ${`${ar.toFixed(2)} ms`.padStart(14)}   ${`${(100 * share).toFixed(1)}%`.padStart(13)}   ${`${alone.ms.toFixed(2)} ms`.padStart(9)} for ${(alone.bytes / 1e6).toFixed(1)} MB in ${alone.tensors} tensors (${(alone.bytes / 1e6 / alone.ms).toFixed(2)} GB/s)`,
    );
  }
}

await main();
