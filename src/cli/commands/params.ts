/** `lory params`: parameters (total, active) and FLOPs per token of the model a pipeline describes. */
import type { Command } from 'commander';
import { positiveInt } from './prepare.js';
import { checkSequenceLength, countFlops, countParams, isMoe, type FlopCount, type ModelConfig, type ParamCount } from '../../model/index.js';
import { loadPipeline } from '../../pipeline/load.js';
import { availableMemory, describeMemory, estimateTrainingMemory, gigabytes, type MemoryEstimate } from '../../train/memory.js';
import { UserError } from '../errors.js';

interface Report {
  pipeline: string;
  model: ModelConfig;
  params: ParamCount;
  flopsPerToken: FlopCount;
  /** Training memory per rank (one process on one device) at the pipeline's micro-batch and batches.seq_len. */
  memory: MemoryEstimate;
  /** With --ranks N: per rank of N, the AdamW state whole on each rank and sharded (train.shard_optimizer). */
  ranks?: { count: number; unsharded: MemoryEstimate; sharded: MemoryEstimate };
}

/** 1234567 → '1.23M' (three significant digits; billions as 'B' for parameters, 'G' for FLOPs). */
export function human(n: number, kind: 'params' | 'flops' = 'params'): string {
  const abs = Math.abs(n);
  for (const [s, v] of [['T', 1e12], [kind === 'flops' ? 'G' : 'B', 1e9], ['M', 1e6], ['K', 1e3]] as const) {
    if (abs >= v) return `${(n / v).toPrecision(3)}${s}`;
  }
  return String(n);
}

const grouped = (n: number) => n.toLocaleString('en-US');

/** Every run's model of a pipeline (validated whole by the pipeline schema); one report per run. */
function load(file: string, seq: number | undefined, ranks: number | undefined): Report[] {
  const loaded = loadPipeline(file);
  return loaded.runs.map((run) => {
    if (seq !== undefined) checkSequenceLength(run.model, seq);
    const name = loaded.pipeline.runs ? `${file} (${run.name})` : file;
    const trainSeq = seq ?? Math.min(loaded.pipeline.batches.seq_len, run.model.contextLength);
    const shape = { microBatch: run.train.micro_batch, seq: trainSeq, accumulation: run.train.accumulation, recompute: run.train.recompute ?? false };
    const memory = estimateTrainingMemory(run.model, shape);
    const perRanks = ranks
      ? { count: ranks, unsharded: estimateTrainingMemory(run.model, { ...shape, ranks }), sharded: estimateTrainingMemory(run.model, { ...shape, ranks, shardOptimizer: true }) }
      : undefined;
    return { pipeline: name, model: run.model, params: countParams(run.model), flopsPerToken: countFlops(run.model, seq ?? run.model.contextLength), memory, ...(perRanks ? { ranks: perRanks } : {}) };
  });
}

/** The MoE line: which routing, with its settings. */
function moeLine(c: ModelConfig): string {
  if (!isMoe(c)) return 'MoE            none (dense)';
  const head = `MoE            ${c.experts} experts in every FFN layer, `;
  if (c.moe === 'top_k') {
    return `${head}top-${c.topK} token choice, capacity factor ${c.capacityFactor} (per sequence), load-balancing loss weight ${c.auxLossWeight}` +
      (c.routerZLossWeight > 0 ? `, router z-loss weight ${c.routerZLossWeight}` : '');
  }
  if (c.moe === 'expert_choice') {
    const group = c.expertChoiceGroup === 'sequence' ? 'per sequence: not causal, as the paper compared it' : 'per position across the batch: causal';
    return `${head}expert choice, capacity factor ${c.capacityFactor} (${group})` + (c.routerZLossWeight > 0 ? `, router z-loss weight ${c.routerZLossWeight}` : '');
  }
  return `${head}segment length ${c.segmentLength} (${c.contextLength / c.segmentLength} segments at full context), Lory's merged experts`;
}

/** What "active" means for each kind. */
function activeNote(c: ModelConfig, p: ParamCount): string {
  if (!isMoe(c)) return '';
  if (c.moe === 'top_k') return `: each token meets ${c.topK} expert${c.topK > 1 ? 's' : ''} per layer`;
  if (c.moe === 'expert_choice') return `: each token meets ${p.activeExperts} expert${p.activeExperts === 1 ? '' : 's'} per layer on average`;
  return ': each token meets one merged expert per layer';
}

function detail(r: Report): string {
  const { model: c, params: p, flopsPerToken: f } = r;
  const moe = isMoe(c);
  const lory = moe && c.moe === 'lory';
  const lines = [
    r.pipeline,
    `model          ${c.nLayers} layers, d_model ${c.dModel}, ${c.nHeads} heads (head dim ${c.dModel / c.nHeads}), d_ff ${c.dFf}, vocab ${c.vocabSize}, context ${c.contextLength}`,
    moeLine(c),
    `parameters     total  ${grouped(p.total).padStart(15)}  (${human(p.total)})`,
    `               active ${grouped(Math.round(p.active)).padStart(15)}  (${human(p.active)}${activeNote(c, p)})`,
    `               embeddings ${human(p.embedding)} (input + untied LM head), non-embedding ${human(p.nonEmbedding)}`,
    `               per layer: attention ${human(p.attention)}, FFN ${human(p.ffnPerExpert)}${moe ? ` × ${c.experts} experts, router ${human(p.router)}` : ''}, norms ${human(p.norms)}`,
    `FLOPs/token    forward ${human(f.forward, 'flops')}, training ${human(f.train, 'flops')} (3 × forward) at sequence length ${f.seq}`,
    `               forward: attention projections ${human(f.attentionProjections, 'flops')}, scores ${human(f.attentionScores, 'flops')}, FFN ${human(f.ffn, 'flops')}` +
      (lory ? `, merging ${human(f.merging, 'flops')}` : '') +
      (moe ? `, router ${human(f.router, 'flops')}` : '') +
      `, LM head ${human(f.lmHead, 'flops')}`,
  ];
  const available = availableMemory();
  lines.push(
    `memory         training needs ~${gigabytes(r.memory.total)} per rank (one process on one device; this machine has ${gigabytes(available.bytes)})`,
    `               ${describeMemory(r.memory)}`,
  );
  if (r.ranks) {
    const { count, unsharded, sharded } = r.ranks;
    lines.push(
      `on ${count} ranks    ~${gigabytes(unsharded.total)} per rank (AdamW state ${gigabytes(unsharded.optimizer)} on every rank); ` +
        `~${gigabytes(sharded.total)} with train.shard_optimizer (AdamW state ${gigabytes(sharded.optimizer)} on the busiest rank)`,
    );
  }
  if (moe && !lory) lines.push(`               FFN computes ${f.expertSlotsPerToken.toPrecision(3)} expert slots per token and layer (capacity slots, empty ones included)`);
  return lines.join('\n');
}

function table(rs: Report[]): string {
  const n = rs[0]?.ranks?.count;
  const head = ['pipeline', 'layers', 'd_model', 'heads', 'd_ff', 'experts', 'routing', 'total', 'active', 'train FLOPs/token', 'train memory/rank', ...(n ? [`at ${n} ranks`, `sharded`] : [])];
  const rows = rs.map((r) => [
    r.pipeline,
    String(r.model.nLayers),
    String(r.model.dModel),
    String(r.model.nHeads),
    String(r.model.dFf),
    String(r.model.experts),
    !isMoe(r.model) ? 'dense' : r.model.moe === 'top_k' ? `top-${r.model.topK}` : r.model.moe,
    human(r.params.total),
    human(r.params.active),
    human(r.flopsPerToken.train, 'flops'),
    `~${gigabytes(r.memory.total)}`,
    ...(r.ranks ? [`~${gigabytes(r.ranks.unsharded.total)}`, `~${gigabytes(r.ranks.sharded.total)}`] : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  return [head, ...rows].map((row) => row.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ')).join('\n');
}

export function registerParams(program: Command): void {
  program
    .command('params')
    .description("count the model's parameters (total and active) and FLOPs per token from pipeline YAMLs")
    .argument('<pipeline...>', 'pipeline YAML file(s); the model: section is read')
    .option('--seq <n>', 'sequence length for the attention FLOPs (default: model.context_length) and the training memory (default: batches.seq_len)')
    .option('--ranks <n>', 'also the training memory per rank of a data-parallel run on n ranks, with the AdamW state whole and sharded (train.shard_optimizer)', positiveInt)
    .option('--json', 'print the counts as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ lory params pipelines/paper-0.3b-32e.yaml
  $ lory params pipelines/paper-*.yaml           one table row per pipeline
  $ lory params --json pipelines/paper-1.5b-8e.yaml | jq .[0].params.total
  $ lory params --ranks 64 pipelines/paper-1.5b-32e.yaml   memory per rank on 64 ranks, sharded or not`,
    )
    .action((files: string[], options: { seq?: string; json?: boolean; ranks?: number }) => {
      let seq: number | undefined;
      if (options.seq !== undefined) {
        seq = Number(options.seq);
        if (!Number.isInteger(seq) || seq < 1) throw new UserError(`--seq must be a positive integer, got '${options.seq}'`);
      }
      const reports = files.flatMap((f) => load(f, seq, options.ranks));
      if (options.json) process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
      else process.stdout.write(`${reports.length === 1 ? detail(reports[0]!) : table(reports)}\n`);
    });
}
