/** `lory embed`: token store → one unit-length vector per document (resumable, shardable). */
import type { Command } from 'commander';
import { InputError } from '../../artifacts/index.js';
import { DEFAULT_MAX_TOKENS, embed, embeddingsUpToDate, mergeEmbeddings, parseShard, type EmbedProgress } from '../../embed/embed.js';
import { rmSync } from 'node:fs';
import type { World } from '../../parallel/mpi.js';
import { together } from '../../parallel/together.js';
import { markAllRanks, threadsPerRank } from '../../parallel/world.js';
import { joinRanks } from '../ranks.js';
import { withSigterm } from './train-report.js';
import type { EmbeddingsStats } from '../../embed/store.js';
import { log } from '../log.js';
import { runStageCommand } from '../stage-command.js';
import { positiveInt } from './prepare.js';
import { duration } from '../progress.js';
import { addDeviceOption } from '../device-option.js';
import { openDevice } from '../../runtime/index.js';

interface Flags {
  out: string;
  encoder?: string;
  encoderTokenizer?: string;
  maxTokens: number;
  batchTokens: number;
  threads?: number;
  device?: string;
  chunk: number;
  shard?: string;
  merge?: string[];
  force?: boolean;
}

function describe(p: EmbedProgress): string {
  const resumed = p.resumed > 0 ? `, ${p.resumed.toLocaleString('en')} from an earlier run` : '';
  return `embedding: ${p.done.toLocaleString('en')}/${p.total.toLocaleString('en')} documents${resumed}, ${p.docsPerSecond.toFixed(1)} docs/s, ETA ${duration(p.etaSeconds)}`;
}

function summary(s: EmbeddingsStats): string {
  const lines = [
    `documents   ${s.documents.toLocaleString('en')}${s.shard ? ` (shard ${s.shard.index}/${s.shard.count}: documents ${s.start}..${s.end - 1})` : ''}${s.mergedFrom ? ` (merged from ${s.mergedFrom} shards)` : ''}`,
    `vectors     ${s.dim}-d float32, unit length`,
    `encoder     ${s.encoder.name}, first ${s.encoder.maxTokens} tokens of each document`,
  ];
  if (s.seconds !== undefined) lines.push(`time        ${s.seconds.toFixed(1)} s, ${s.documentsPerSecond?.toFixed(1)} documents/s`);
  return lines.join('\n');
}

export function registerEmbed(program: Command): void {
  const command = program
    .command('embed')
    .description('embed every document of a token store (default encoder: all-MiniLM-L6-v2, built as an ONNX graph)')
    .argument('[tokens]', 'token store (made by `lory prepare`)')
    .requiredOption('-o, --out <dir>', 'the embeddings to write')
    .option('--encoder <model.onnx>', 'your own ONNX sentence encoder (e.g. Contriever) instead of all-MiniLM-L6-v2')
    .option('--encoder-tokenizer <tokenizer.json>', 'the tokenizer of --encoder')
    .option('--max-tokens <n>', 'embed each document from its first n encoder tokens (special tokens not counted)', positiveInt, DEFAULT_MAX_TOKENS)
    .option('--batch-tokens <n>', 'padded tokens per batch', positiveInt, 4096)
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', positiveInt);
  addDeviceOption(command, 'the encoder')
    .option('--chunk <n>', 'documents per checkpointed chunk (an interrupted run resumes at its first unfinished chunk)', positiveInt, 1024)
    .option('--shard <i/n>', 'embed only slice i of n (0 <= i < n), for many machines; join the slices with --merge')
    .option('--merge <shards...>', 'join the shard directories into one embeddings artifact (no tokens argument)')
    .option('--force', 'recompute even when up to date (and drop a resumable partial run)')
    .addHelpText(
      'after',
      `
Examples:
  $ lory embed work/train -o work/embeddings
  $ lory embed work/train -o work/emb-0 --shard 0/2     # on machine A
  $ lory embed work/train -o work/emb-1 --shard 1/2     # on machine B
  $ lory embed --merge work/emb-0 work/emb-1 -o work/embeddings
  $ lory embed work/train -o work/emb-contriever --encoder contriever.onnx --encoder-tokenizer tokenizer.json`,
    )
    .action(async (tokens: string | undefined, flags: Flags, command: Command) => {
      if (flags.merge) {
        if (tokens !== undefined) throw new InputError('--merge takes shard directories only; leave out the token store');
        // Flags that shape the embedding itself have no meaning when joining finished shards.
        const given = ['shard', 'encoder', 'encoderTokenizer', 'maxTokens', 'batchTokens', 'threads', 'device', 'chunk'].filter((o) => command.getOptionValueSource(o) === 'cli');
        if (given.length > 0) {
          const flag = (o: string) => `--${o.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
          throw new InputError(`--merge joins finished shards; ${given.map(flag).join(', ')} ${given.length > 1 ? 'do' : 'does'} not apply to it`);
        }
        const result = await mergeEmbeddings(flags.merge, flags.out, flags.force);
        process.stdout.write(`${result.skipped ? `${flags.out} is up to date` : `wrote ${flags.out}`}\n${summary(result.manifest.stats)}\n`);
        return;
      }
      if (tokens === undefined) throw new InputError('name the token store to embed (or use --merge <shards...>)');
      const world = joinRanks();
      if (world) {
        if (flags.shard !== undefined) throw markAllRanks(new InputError(`under mpirun each of the ${world.size} ranks embeds its own shard and rank 0 merges them: leave out --shard`));
        await embedOnRanks(world, tokens, flags);
        return;
      }
      const shard = flags.shard !== undefined ? parseShard(flags.shard) : undefined;
      let lastLine = 0;
      await runStageCommand({ name: 'embed', startText: 'loading the encoder', interruptText: 'interrupted; saving finished chunks (Ctrl-C again to exit now)' }, async (progress, signal) => {
        const result = await embed({
          tokens,
          out: flags.out,
          encoder: flags.encoder,
          encoderTokenizer: flags.encoderTokenizer,
          maxTokens: flags.maxTokens,
          batchTokens: flags.batchTokens,
          threads: flags.threads,
          device: await openDevice(flags.device, '--device', { opLibrary: false }),
          chunkSize: flags.chunk,
          shard,
          force: flags.force,
          signal,
          onProgress: (p) => {
            // A spinner redraws freely; plain logs (CI, pipes) get an info line every 10 s.
            if (process.stderr.isTTY) progress.update(describe(p));
            else if (Date.now() - lastLine > 10_000 || p.done === p.total) {
              lastLine = Date.now();
              log.info(describe(p));
            }
          },
        });
        progress.succeed(result.skipped ? `${flags.out} is up to date (--force recomputes it)` : `wrote ${flags.out}`);
        process.stdout.write(`${summary(result.manifest.stats)}\n`);
      });
    });
}

/** Where rank r of n keeps its shard until rank 0 has merged them (beside the output, removed after). */
const rankShardDir = (out: string, rank: number, ranks: number) => `${out}.rank-${rank}-of-${ranks}`;

/**
 * `mpirun -np N lory embed`: rank r embeds shard r/N (the --shard semantics) with its share of the
 * cores, then rank 0 merges the shards into --out — byte for byte what one process writes — and removes
 * them. An up-to-date --out is left alone; an interrupted run resumes each rank's shard.
 */
async function embedOnRanks(world: World, tokens: string, flags: Flags): Promise<void> {
  const options = { tokens, out: flags.out, encoder: flags.encoder, encoderTokenizer: flags.encoderTokenizer, maxTokens: flags.maxTokens, batchTokens: flags.batchTokens, chunkSize: flags.chunk, threads: flags.threads ?? threadsPerRank(world), device: await together(world, () => openDevice(flags.device, '--device', { opLibrary: false })) };
  if (!flags.force && (await together(world, () => embeddingsUpToDate(options)))) {
    if (world.isRoot) process.stdout.write(`${flags.out} is up to date (--force recomputes it)\n`);
    return;
  }
  const shards = Array.from({ length: world.size }, (_, r) => rankShardDir(flags.out, r, world.size));
  await runStageCommand({ name: 'embed', startText: `loading the encoder on ${world.size} ranks`, interruptText: 'interrupted; saving finished chunks', quiet: !world.isRoot }, async (progress, sigint) => {
    const stop = withSigterm(sigint, ['SIGTERM', 'SIGUSR1']);
    try {
      await together(world, () =>
        embed({ ...options, out: shards[world.rank]!, shard: { index: world.rank, count: world.size }, force: flags.force, signal: stop.signal, onProgress: (p) => progress.update(`rank 0: ${describe(p)}`) }),
      );
      const merged = await together(world, async () => {
        if (!world.isRoot) return undefined;
        const result = await mergeEmbeddings(shards, flags.out, flags.force);
        for (const dir of shards) rmSync(dir, { recursive: true, force: true });
        return result;
      });
      if (merged) {
        progress.succeed(`wrote ${flags.out} (${world.size} ranks)`);
        process.stdout.write(`${summary(merged.manifest.stats)}\n`);
      }
    } finally {
      stop.dispose();
    }
  });
}
