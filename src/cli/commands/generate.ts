/** `lory generate`: continue a prompt with a checkpoint, streaming tokens to stdout. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { readFileSync } from 'node:fs';
import { InputError, inputFileError } from '../../artifacts/index.js';
import { decodeUtf8 } from '../../data/utf8.js';
import { encodeMany, loadTokenizer } from '../../data/tokenizer.js';
import { generateTokens, type GenerateRouting } from '../../generate/generate.js';
import { readCheckpoint } from '../../train/checkpoint.js';
import { log } from '../log.js';
import { outputClosed } from '../output.js';
import { positiveInt } from './prepare.js';
import { addDeviceOption } from '../device-option.js';
import { openDevice } from '../../runtime/index.js';

interface Flags {
  maxTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  stopAtEos: boolean;
  routing: GenerateRouting;
  cache: boolean;
  which: 'latest' | 'best';
  threads?: number;
  device?: string;
}

/** Numbers are checked by generateTokens, which names the flag in its one-line error. */
const number = (v: string) => {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number');
  return n;
};

/** The prompt: the argument, or stdin when the argument is '-' or missing and stdin is not a terminal. */
function readPrompt(arg: string | undefined): string {
  if (arg !== undefined && arg !== '-') return arg;
  if (arg === undefined && process.stdin.isTTY) return '';
  let bytes: Buffer;
  try {
    bytes = readFileSync(0);
  } catch (error) {
    throw inputFileError(error, 'stdin');
  }
  try {
    return decodeUtf8(bytes); // prepare's rule: bytes that are not UTF-8 are refused, never read as U+FFFD
  } catch (error) {
    throw new InputError(`stdin: the prompt is ${(error as Error).message}`);
  }
}

export function registerGenerate(program: Command): void {
  const command = program
    .command('generate')
    .description('continue a prompt with a checkpoint (prompt routing, key/value cache), streaming tokens')
    .argument('<checkpoint>', 'a checkpoint (<run>/checkpoints/step-N) or run directory (made by `lory train`)')
    .argument('[prompt]', "the prompt; '-' or none reads stdin (an empty prompt starts a new document)")
    .option('-n, --max-tokens <n>', 'tokens to generate at most', number, 100)
    .option('-t, --temperature <x>', 'sampling temperature; 0 is greedy', number, 0.8)
    .option('--top-k <k>', 'sample among the k most likely tokens (0: all)', number, 50)
    .option('--top-p <p>', 'sample among the most likely tokens holding probability p (1: all)', number, 0.95)
    .option('--seed <n>', 'random seed (the same seed gives the same text)', number, 0)
    .option('--no-stop-at-eos', 'keep generating after an end-of-sequence token')
    .addOption(new Option('--routing <mode>', "Lory routing: 'prompt' (one decision from the prompt, the paper's inference mode) or 'segment' (re-decided every segment, as in training)").choices(['prompt', 'segment']).default('prompt'))
    .option('--no-cache', 'recompute the whole context for every token (slow; for comparison)')
    .addOption(new Option('--which <checkpoint>', 'checkpoint of a run directory').choices(['latest', 'best']).default('latest'))
    .option('--threads <n>', 'ONNX Runtime threads (default: all cores)', positiveInt);
  addDeviceOption(command, 'the decoder and the router')
    .addHelpText(
      'after',
      `
Examples:
  $ lory generate work/run-lory "The meaning of life is"
  $ echo "def fibonacci(n):" | lory generate work/run-lory -t 0 -n 60
  $ lory generate work/run-lory/checkpoints/step-000000200 "Dear team," --seed 3 --routing segment`,
    )
    .action(async (checkpoint: string, promptArg: string | undefined, flags: Flags) => {
      const device = await openDevice(flags.device);
      const ckpt = readCheckpoint(checkpoint, { which: flags.which, onWarn: (m) => log.warn(m) });
      const tok = loadTokenizer(ckpt.tokenizerPath);
      const prompt = readPrompt(promptArg);
      const [ids] = await encodeMany(tok, [prompt]);
      // Ctrl-C, or nobody reading the text any more (`| head -c 200`: src/cli/output.ts), stops generating.
      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once('SIGINT', onSigint);
      const generated: number[] = [];
      let printed = '';
      const stream = async () => {
        const text = await tok.tokenizer.decode(generated, false);
        // Hold back an incomplete UTF-8 character (decoded as U+FFFD) until its next byte arrives.
        const stable = text.endsWith('\uFFFD') ? text.slice(0, text.lastIndexOf('\uFFFD')) : text;
        if (stable.startsWith(printed) && stable.length > printed.length) {
          process.stdout.write(stable.slice(printed.length));
          printed = stable;
        }
      };
      try {
        process.stdout.write(prompt);
        const r = await generateTokens(ckpt.model, ckpt.params, ids ?? [], tok.eosId, {
          maxTokens: flags.maxTokens,
          temperature: flags.temperature,
          topK: flags.topK,
          topP: flags.topP,
          seed: flags.seed,
          stopAtEos: flags.stopAtEos,
          routing: flags.routing,
          cache: flags.cache,
          signal: AbortSignal.any([controller.signal, outputClosed]),
          onToken: async (id) => {
            generated.push(id);
            await stream();
          },
          ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
          device,
        });
        const rest = await tok.tokenizer.decode(generated, false);
        if (rest.startsWith(printed)) process.stdout.write(rest.slice(printed.length));
        process.stdout.write('\n');
        const rate = r.decodeMs > 0 ? `${((1000 * r.tokens.length) / r.decodeMs).toFixed(1)} tokens/s` : '';
        const routing = ckpt.model.experts > 1 ? `, ${flags.routing} routing` : '';
        log.info(`${r.tokens.length} tokens (${rate}${routing}; prompt ${r.context.length - 1} tokens in ${r.promptMs} ms), stopped by ${r.stoppedBy}`);
        if (r.stoppedBy === 'interrupted') process.exitCode = 130;
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
    });
}
