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
import { compileForward, ResidentParams } from '../eval/forward.js';
import { isLoryMoe, isMoe, PARAM, type ModelConfig, type ParamArray } from '../model/index.js';
import { mulberry32 } from '../random/index.js';
import { CachedDecoder, FullDecoder, type Decoder, type StepResult } from './decoder.js';
import { sampleToken, type SamplingOptions } from './sampling.js';

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
  signal?: AbortSignal;
  /** Called with each generated token as soon as it is drawn. */
  onToken?(id: number): void | Promise<void>;
}

export interface GenerateResult {
  /** The model's input before generation: EOS + the prompt's tokens. */
  context: number[];
  tokens: number[];
  stoppedBy: 'eos' | 'max-tokens' | 'context' | 'interrupted';
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

/** The prompt-routing decision for `tokens`: per layer [E], from the model's own prompt-routing graph. */
async function promptRoutingOf(params: ResidentParams, tokens: readonly number[], threads?: number): Promise<ParamArray[]> {
  const g = await compileForward(params, { batch: 1, seq: tokens.length, routing: 'prompt', logits: false, ...(threads ? { threads } : {}) });
  try {
    return (await g.run(tokens)).routing;
  } finally {
    g.dispose();
  }
}

export async function generateTokens(model: ModelConfig, weights: Record<string, ParamArray>, prompt: readonly number[], eos: number, o: GenerateOptions): Promise<GenerateResult> {
  const C = model.contextLength;
  const context = [eos, ...prompt];
  if (context.length >= C) throw new InputError(`the prompt is ${prompt.length} tokens; the model's context holds ${C} (EOS + prompt + at least one new token): shorten the prompt`);
  checkGenerateOptions(o);
  if (isMoe(model) && !isLoryMoe(model)) {
    // The decode path merges experts per routing decision (Lory); token-level baselines route every token.
    throw new InputError(`lory generate decodes dense and Lory models; this is a ${model.moe} baseline (compare it with lory eval perplexity)`);
  }
  const routingMode = o.routing ?? 'prompt';
  if (routingMode === 'segment' && o.cache === false) throw new InputError('--routing segment needs the key/value cache (it re-routes at segment boundaries as it decodes)');
  const moe = isMoe(model);
  const T = model.segmentLength;
  const E = model.experts;
  const threads = o.threads;
  const params = new ResidentParams(model, weights);
  const started = Date.now();
  let decoder: Decoder | undefined;
  try {
    // Routing for the prompt (prompt mode) or for segment 1 (segment mode).
    const first = moe ? await promptRoutingOf(params, routingMode === 'prompt' ? context : context.slice(0, Math.min(T, context.length)), threads) : [];
    decoder = o.cache === false ? await FullDecoder.create(params, { pad: eos, ...(threads ? { threads } : {}) }) : await CachedDecoder.create(model, weights, { ffnInputs: moe && routingMode === 'segment', ...(threads ? { threads } : {}) });
    let routing = first;
    // Segment routing: running sums of each layer's FFN inputs over the current segment.
    const sums = moe && routingMode === 'segment' ? Array.from({ length: model.nLayers }, () => new Float64Array(model.dModel)) : undefined;
    const advance = async (token: number): Promise<StepResult> => {
      const p = decoder!.length;
      if (sums && p > 0 && p % T === 0) {
        routing = sums.map((s, l) => routerWeights(s.map((x) => x / T), weights[PARAM.router(l)]!, E, model.dtype));
        for (const s of sums) s.fill(0);
      }
      const r = await decoder!.step(token, routing);
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
      if (tokens.length === o.maxTokens) break;
      if (decoder.length >= decoder.capacity) {
        stoppedBy = 'context';
        break;
      }
      last = await advance(next);
    }
    return { context, tokens, stoppedBy, promptRouting: first.map((w) => [...w]), promptMs, decodeMs: Date.now() - decodeStart };
  } finally {
    decoder?.dispose();
    params.dispose();
  }
}
