/** `lory build-batches`: token store + embeddings → shuffled training instances (similarity or random order). */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { buildBatches, type BatchesStats, type Strategy } from '../../batching/build-batches.js';
import { runStageCommand } from '../stage-command.js';
import { positiveInt } from './prepare.js';

interface Flags {
  embeddings?: string;
  out: string;
  strategy: Strategy;
  seqLen: number;
  k: number;
  index: string;
  param: Record<string, number>;
  threads?: number;
  seed: number;
  validFraction: number;
  dedup: boolean;
  dedupThreshold: number;
  force?: boolean;
  json?: boolean;
}

function fraction(value: string): number {
  const x = Number(value);
  if (!(x >= 0 && x < 1)) throw new InvalidArgumentError('must be a number in [0, 1)');
  return x;
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

function searchParam(value: string, previous: Record<string, number>): Record<string, number> {
  const m = /^([A-Za-z_][\w]*)=(-?[\d.]+)$/.exec(value);
  if (!m) throw new InvalidArgumentError('must be NAME=NUMBER, e.g. nprobe=16 or efSearch=128');
  return { ...previous, [m[1]!]: Number(m[2]) };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function formatBatchesReport(s: BatchesStats): string {
  const lines = [
    `strategy         ${s.strategy}${s.knn ? ` (kNN: ${s.knn.index}, k=${s.knn.k}${s.knn.recall !== null ? `, recall@${s.knn.k} ${s.knn.recall.toFixed(3)} on ${s.knn.recallSample} queries` : ', exact'})` : ''}`,
    `documents        ${s.documentsKept.toLocaleString('en')} packed of ${s.documents.toLocaleString('en')} (${s.duplicatesDropped} near-duplicates dropped)${s.paths !== null ? `, ${s.paths.toLocaleString('en')} paths` : ''}`,
    `instances        ${s.trainInstances.toLocaleString('en')} train + ${s.validInstances.toLocaleString('en')} valid of ${s.seqLen + 1} tokens (${s.tokensDropped} tail tokens dropped)`,
  ];
  const a = s.adjacency;
  lines.push('adjacent documents          this order   random order');
  if (a.similarity) lines.push(`  mean cosine similarity    ${a.similarity.order.toFixed(3).padStart(10)}   ${a.similarity.random.toFixed(3).padStart(12)}`);
  if (a.sameDomain) lines.push(`  same domain               ${pct(a.sameDomain.order).padStart(10)}   ${pct(a.sameDomain.random).padStart(12)}`);
  lines.push(
    `time             ${Object.entries(s.seconds)
      .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
      .join(', ')}; peak memory ${s.peakRssMB} MB`,
  );
  return lines.join('\n');
}

export function registerBuildBatches(program: Command): void {
  program
    .command('build-batches')
    .description('order documents by similarity (kNN + In-Context Pretraining traversal) or at random, and pack them into training instances')
    .argument('<tokens>', 'token store (made by `lory prepare`)')
    .option('-e, --embeddings <dir>', 'embeddings of the same store (made by `lory embed`); needed for --strategy similarity')
    .requiredOption('-o, --out <dir>', 'the batches artifact to write')
    .addOption(new Option('--strategy <name>', 'document order').choices(['similarity', 'random']).default('similarity'))
    .option('--seq-len <L>', 'tokens a model reads per instance; instances hold L+1', positiveInt, 1024)
    .option('-k <n>', 'nearest neighbours per document', positiveInt, 10)
    .option('--index <factory>', "FAISS index factory string: 'Flat' (exact), 'IVF1024,Flat', 'HNSW32', ...", 'Flat')
    .option('--param <name=value>', 'FAISS search parameter, repeatable: nprobe=16, efSearch=128', searchParam, {})
    .option('--threads <n>', 'threads for FAISS (default: all cores)', positiveInt)
    .option('--seed <n>', 'seed of the instance shuffle and the random order', nonNegativeInt, 0)
    .option('--valid-fraction <x>', 'share of instances held out for validation', fraction, 0.01)
    .option('--no-dedup', 'keep near-duplicate documents')
    .option('--dedup-threshold <x>', 'Jaccard similarity of 5-word shingle sets that makes a near-duplicate', fraction, 0.8)
    .option('--force', 'rebuild even when up to date')
    .option('--json', 'print the statistics as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ lory build-batches work/train -e work/embeddings -o work/batches --seq-len 1024
  $ lory build-batches work/train -e work/embeddings -o work/batches-random --strategy random
  $ lory build-batches work/train -e work/embeddings -o work/batches --index IVF1024,Flat --param nprobe=8`,
    )
    .action(async (tokens: string, flags: Flags) => {
      await runStageCommand({ name: 'build-batches', startText: 'reading inputs' }, async (progress, signal) => {
        const result = await buildBatches({
          tokens,
          embeddings: flags.embeddings,
          out: flags.out,
          strategy: flags.strategy,
          seqLen: flags.seqLen,
          k: flags.k,
          index: flags.index,
          indexParams: flags.param,
          threads: flags.threads,
          seed: flags.seed,
          validFraction: flags.validFraction,
          dedup: flags.dedup,
          dedupThreshold: flags.dedupThreshold,
          force: flags.force,
          signal,
          onProgress: (phase, done, total) => progress.update(done !== undefined && total ? `${phase}: ${done.toLocaleString('en')}/${total.toLocaleString('en')}` : phase),
        });
        progress.succeed(result.skipped ? `${flags.out} is up to date (--force rebuilds it)` : `wrote ${flags.out}`);
        const s = result.manifest.stats;
        process.stdout.write(flags.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatBatchesReport(s)}\n`);
      });
    });
}
