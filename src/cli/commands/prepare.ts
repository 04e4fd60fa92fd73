/** `lory prepare`: corpus → token store (tokenizer, tokens, offsets, metadata). */
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_VOCAB_SIZE, prepare, type PrepareProgress } from '../../data/prepare.js';
import { log } from '../log.js';
import { runStageCommand } from '../stage-command.js';

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

interface PrepareFlags {
  out: string;
  vocabSize?: number;
  tokenizer?: string;
  eos?: string;
  textField: string;
  skipBadLines?: boolean;
  maxTrainMb: number;
  force?: boolean;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

function describe(p: PrepareProgress): string {
  if (p.phase === 'tokenizing') return `tokenizing: ${p.documents.toLocaleString('en')} documents, ${p.tokens.toLocaleString('en')} tokens, ${mb(p.bytes)}`;
  if (p.phase === 'collecting training text') return `collecting tokenizer training text: ${p.documents.toLocaleString('en')} documents, ${mb(p.bytes)}`;
  if (p.phase === 'training tokenizer') return `training a byte-level BPE on ${mb(p.bytes)} of text`;
  return 'hashing inputs';
}

export function registerPrepare(program: Command): void {
  program
    .command('prepare')
    .description('tokenize a corpus into a token store (trains a byte-level BPE, or uses a given tokenizer)')
    .argument('<inputs...>', 'JSONL files (.jsonl, .jsonl.gz: one {"text": ...} object a line), text files, or folders of them')
    .requiredOption('-o, --out <dir>', 'the token store to write')
    .option('--vocab-size <n>', `train a byte-level BPE of this many tokens (default ${DEFAULT_VOCAB_SIZE}, at most 30001)`, positiveInt)
    .option('--tokenizer <path>', 'use this tokenizer instead: a token store (e.g. the training split, for held-out data) or a tokenizer.json')
    .option('--eos <token>', 'end-of-sequence token of a given tokenizer (default: found by name, e.g. </s>)')
    .option('--text-field <name>', 'the JSON field that holds the text', 'text')
    .option('--skip-bad-lines', 'count and skip malformed lines instead of stopping at the first')
    .option('--max-train-mb <n>', 'train the tokenizer on at most this many MB of text', positiveInt, 1000)
    .option('--force', 'rebuild even when the store is up to date')
    .addHelpText(
      'after',
      `
Examples:
  $ lory prepare corpus/train.jsonl.gz -o work/train --vocab-size 8192
  $ lory prepare corpus/heldout.jsonl.gz -o work/heldout --tokenizer work/train
  $ lory prepare my-texts/ -o work/texts --tokenizer llama/tokenizer.json`,
    )
    .action(async (inputs: string[], flags: PrepareFlags) => {
      await runStageCommand({ name: 'prepare', startText: 'hashing inputs' }, async (progress, signal) => {
        const result = await prepare({
          inputs,
          out: flags.out,
          vocabSize: flags.vocabSize,
          tokenizer: flags.tokenizer,
          eos: flags.eos,
          textField: flags.textField,
          skipBadLines: flags.skipBadLines,
          maxTrainBytes: flags.maxTrainMb * 1e6,
          force: flags.force,
          signal,
          onProgress: (p) => progress.update(describe(p)),
        });
        const s = result.manifest.stats;
        if (result.skipped) progress.succeed(`${flags.out} is up to date (${s.documents.toLocaleString('en')} documents; --force rebuilds it)`);
        else progress.succeed(`wrote ${flags.out}`);
        const domains = Object.entries(s.domains)
          .map(([d, n]) => `${d} ${n}`)
          .join(', ');
        process.stdout.write(
          [
            `documents   ${s.documents.toLocaleString('en')}${domains ? `  (${domains})` : ''}`,
            `tokens      ${s.tokens.toLocaleString('en')} (${s.dtype}, EOS ${s.eosToken} = ${s.eosId} after each document)`,
            `text        ${mb(s.textBytes)}, ${(s.textBytes / Math.max(1, s.tokens - s.documents)).toFixed(2)} bytes/token`,
            `tokenizer   ${s.tokenizer === 'trained' ? 'byte-level BPE trained here' : 'given'}, vocabulary ${s.vocabSize.toLocaleString('en')}`,
          ].join('\n') + '\n',
        );
        if (s.badLines > 0) {
          const shown = s.badLineExamples ?? [];
          log.warn(`skipped ${s.badLines} bad lines (--skip-bad-lines)${shown.length ? `; the first ${shown.length}:` : ''}`);
          for (const line of shown) log.warn(`  ${line}`);
        }
        const asked = (result.manifest.params.tokenizer as { vocabSize?: number }).vocabSize;
        if (asked !== undefined && s.vocabSize < asked) {
          log.warn(`the vocabulary has ${s.vocabSize.toLocaleString('en')} tokens, not the ${asked.toLocaleString('en')} asked for: this corpus has no more merges to learn`);
        }
        if (s.emptyDocuments > 0) log.warn(`skipped ${s.emptyDocuments} documents with empty text`);
      });
    });
}
