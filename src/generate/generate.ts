/**
 * `lory generate`: continue a prompt, one token at a time.
 *
 * Routing of Lory checkpoints:
 *   prompt   (default; the paper's inference mode) one decision per layer from the mean FFN input
 *            over the whole prompt, then those merged experts serve the prompt and every generated token.
 *   segment  as in training, re-decided at every segment boundary: segment k is served with
 *            softmax(R · mean FFN input of segment k−1). Segment 1 has no predecessor; it is routed from
 *            the prompt tokens inside it (exactly training's rule when the prompt fills the segment).
 * The sequence starts with EOS (documents follow an EOS in training), then the prompt.
 */
import { InputError } from '../artifacts/index.js';
import { ResidentParams } from '../eval/forward.js';
import { PromptRouter } from '../eval/prompt-routing.js';
import { isLoryMoe, isMoe, PARAM, type ModelConfig, type ParamArray } from '../model/index.js';
import { mulberry32 } from '../random/index.js';
import { CachedDecoder, FullDecoder, type Decoder, type StepResult } from './decoder.js';
import { sampleToken, type SamplingOptions } from './sampling.js';
import { CPU, type Device } from '../runtime/index.js';

export type GenerateRouting = 'prompt' | 'segment';

export interface GenerateOptions extends SamplingOptions {
  maxTokens: number;
  seed: number;
  /** Stop when EOS is drawn (default true). */
  stopAtEos?: boolean;
  routing?: GenerateRouting;
  /** Use the key/value cache (default true); false recomputes the whole context per token. */
  cache?: boolean;
  threads?: number;
  /** Where the decoder runs (default the CPU). */
  device?: Device;
  signal?: AbortSignal;
  /** Called with each generated token as soon as it is drawn. */
  onToken?(id: number): void | Promise<void>;
  /** Asked after each token (all so far): true stops generation ('stop'), e.g. at a stop string. */
  until?(tokens: readonly number[]): boolean | Promise<boolean>;
}

export interface GenerateResult {
  /** The model's input before generation: EOS + the prompt's tokens. */
  context: number[];
  tokens: number[];
  stoppedBy: 'eos' | 'max-tokens' | 'context' | 'interrupted' | 'stop';
  /** Routing weights per layer [E] that served the prompt (Lory only). */
  promptRouting: number[][];
  promptMs: number;
  decodeMs: number;
}

/** Each setting in range, or an InputError naming its flag. */
export function checkGenerateOptions(o: GenerateOptions): void {
  const bad = (flag: string, want: string, got: number) => {
    throw new InputError(`--${flag} must be ${want}, got ${got}`);
  };
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 1) bad('max-tokens', 'a positive integer', o.maxTokens);
  if (!(o.temperature >= 0 && o.temperature <= 100)) bad('temperature', 'a number in [0, 100] (0: greedy)', o.temperature);
  if (!Number.isInteger(o.topK) || o.topK < 0) bad('top-k', 'a non-negative integer (0: all tokens)', o.topK);
  if (!(o.topP > 0 && o.topP <= 1)) bad('top-p', 'a number in (0, 1]', o.topP);
  if (!Number.isInteger(o.seed) || o.seed < 0) bad('seed', 'a non-negative integer', o.seed);
}

/** softmax(mean · R) for one layer: mean [d], R [d,E]. */
export function routerWeights(mean: ArrayLike<number>, router: ArrayLike<number>, E: number, dtype: ModelConfig['dtype']): ParamArray {
  const d = mean.length;
  const z = new Float64Array(E);
  for (let j = 0; j < d; j++) for (let i = 0; i < E; i++) z[i] = z[i]! + mean[j]! * router[j * E + i]!;
  const max = Math.max(...z);
  let sum = 0;
  for (let i = 0; i < E; i++) sum += z[i] = Math.exp(z[i]! - max);
  const out = dtype === 'float64' ? new Float64Array(E) : new Float32Array(E);
  for (let i = 0; i < E; i++) out[i] = z[i]! / sum;
  return out;
}

/** Routing, cache and threads: what a Generator is compiled for. */
export interface GeneratorSetup {
  routing?: GenerateRouting;
  /** Use the key/value cache (default true); false recomputes the whole context per token. */
  cache?: boolean;
  threads?: number;
  /** Where the decoder runs (default the CPU). */
  device?: Device;
}

/**
 * A model opened for generation: the decoder (and the prompt-routing graphs) compiled once and reused
 * for one context after another (`lory eval tasks` decodes every item of a task with one).
 */
export class Generator {
  private constructor(
    readonly model: ModelConfig,
    private readonly weights: Record<string, ParamArray>,
    private readonly params: ResidentParams,
    private readonly decoder: Decoder,
    private readonly router: PromptRouter | undefined,
    readonly routing: GenerateRouting,
  ) {}

  static async open(model: ModelConfig, weights: Record<string, ParamArray>, eos: number, o: GeneratorSetup = {}): Promise<Generator> {
    if (isMoe(model) && !isLoryMoe(model) && o.cache !== false) {
      // The cached path merges experts per routing decision (Lory); token-level baselines route every token.
      throw new InputError(`lory generate decodes dense and Lory models with the key/value cache; this is a ${model.moe} baseline (decode it with --no-cache, or compare it with lory eval perplexity)`);
    }
    const routing = o.routing ?? 'prompt';
    if (routing === 'segment' && o.cache === false) throw new InputError('--routing segment needs the key/value cache (it re-routes at segment boundaries as it decodes)');
    const lory = isLoryMoe(model);
    const threads = o.threads;
    const params = new ResidentParams(model, weights, o.device ?? CPU);
    let decoder: Decoder | undefined;
    try {
      decoder =
        o.cache === false
          ? await FullDecoder.create(params, { pad: eos, ...(threads ? { threads } : {}) })
          : await CachedDecoder.create(model, weights, { ffnInputs: lory && routing === 'segment', ...(threads ? { threads } : {}), ...(o.device ? { device: o.device } : {}) });
    } catch (error) {
      params.dispose();
      throw error;
    }
    const router = lory ? new PromptRouter(params, { batch: 1, ...(threads ? { threads } : {}) }) : undefined;
    return new Generator(model, weights, params, decoder, router, routing);
  }

  /** Positions the decoder holds: a context must leave at least one for a new token. */
  get capacity(): number {
    return this.decoder.capacity;
  }

  /** Continue `context` (the model's whole input: EOS + prompt, or a window of it). */
  async generate(context: readonly number[], eos: number, o: GenerateOptions): Promise<GenerateResult> {
    const { model, weights, decoder } = this;
    if (context.length === 0 || context.length >= decoder.capacity) throw new Error(`generate: a context of ${context.length} tokens for ${decoder.capacity} positions`);
    const T = model.segmentLength;
    const E = model.experts;
    const started = Date.now();
    decoder.reset();
    // Routing for the prompt (prompt mode) or for segment 1 (segment mode).
    const first = this.router ? (await this.router.route([this.routing === 'prompt' ? context : context.slice(0, Math.min(T, context.length))]))[0]! : [];
    let routing = first;
    // Segment routing: running sums of each layer's FFN inputs over the current segment.
    const sums = this.router && this.routing === 'segment' ? Array.from({ length: model.nLayers }, () => new Float64Array(model.dModel)) : undefined;
    const advance = async (token: number): Promise<StepResult> => {
      const p = decoder.length;
      if (sums && p > 0 && p % T === 0) {
        routing = sums.map((s, l) => routerWeights(s.map((x) => x / T), weights[PARAM.router(l)]!, E, model.dtype));
        for (const s of sums) s.fill(0);
      }
      const r = await decoder.step(token, routing);
      if (sums) r.ffnInputs!.forEach((x, l) => x.forEach((v, j) => (sums[l]![j] = sums[l]![j]! + v)));
      return r;
    };
    let last: StepResult;
    if (sums) {
      for (const t of context) last = await advance(t);
    } else last = await decoder.prefill(context, routing);
    const promptMs = Date.now() - started;
    const rand = mulberry32(o.seed);
    const tokens: number[] = [];
    let stoppedBy: GenerateResult['stoppedBy'] = 'max-tokens';
    const decodeStart = Date.now();
    while (tokens.length < o.maxTokens) {
      if (o.signal?.aborted) {
        stoppedBy = 'interrupted';
        break;
      }
      const next = sampleToken(last!.logits, o, rand);
      if (next === eos && o.stopAtEos !== false) {
        stoppedBy = 'eos';
        break;
      }
      tokens.push(next);
      await o.onToken?.(next);
      if (await o.until?.(tokens)) {
        stoppedBy = 'stop';
        break;
      }
      if (tokens.length === o.maxTokens) break;
      if (decoder.length >= decoder.capacity) {
        stoppedBy = 'context';
        break;
      }
      last = await advance(next);
    }
    return { context: [...context], tokens, stoppedBy, promptRouting: first.map((w) => [...w]), promptMs, decodeMs: Date.now() - decodeStart };
  }

  dispose(): void {
    this.router?.dispose();
    this.decoder.dispose();
    this.params.dispose();
  }
}

export async function generateTokens(model: ModelConfig, weights: Record<string, ParamArray>, prompt: readonly number[], eos: number, o: GenerateOptions): Promise<GenerateResult> {
  const C = model.contextLength;
  const context = [eos, ...prompt];
  if (context.length >= C) throw new InputError(`the prompt is ${prompt.length} tokens; the model's context holds ${C} (EOS + prompt + at least one new token): shorten the prompt`);
  checkGenerateOptions(o);
  const g = await Generator.open(model, weights, eos, { ...(o.routing ? { routing: o.routing } : {}), ...(o.cache !== undefined ? { cache: o.cache } : {}), ...(o.threads ? { threads: o.threads } : {}), ...(o.device ? { device: o.device } : {}) });
  try {
    return await g.generate(context, eos, o);
  } finally {
    g.dispose();
  }
}
