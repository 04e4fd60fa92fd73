/**
 * Decoders that turn "the next token at position p" into logits, for one sequence:
 *   CachedDecoder  the decode-step graph (src/model/decode.ts) with the key/value cache resident in
 *                  native memory, ping-ponged between two buffers: one position of work per token.
 *   FullDecoder    no cache: the whole context recomputed for every token (the reference, and the
 *                  baseline the bench compares against).
 * MoE layers take fixed routing weights [E] per layer. The cached decoder merges the experts for those
 * weights once (src/model/merge.ts) and runs the dense decode graph with the merged FFN, re-merging
 * only when the weights change (segment routing: once per segment); it also returns each layer's FFN
 * input of the new position, from which segment routing averages.
 */
import * as G from '../graph/index.js';
import { compileForward, type ForwardGraph, type ResidentParams } from '../eval/forward.js';
import { buildLoryDecode, DECODE_INPUT, headDim, isLoryMoe, isMoe, mergeLayerExperts, modelSessionOptions, PARAM, paramSpecs, type ModelConfig, type ParamArray } from '../model/index.js';
import { ResidentParams as Params } from '../eval/forward.js';
import { CPU, deviceSessionOptions, loadRuntime, type Device, type Feed, type ResidentValue, type Session } from '../runtime/index.js';

export interface StepResult {
  /** [V] */
  logits: ParamArray;
  /** Per layer [d] (cached decoder only). */
  ffnInputs?: ParamArray[];
}

export interface Decoder {
  readonly capacity: number;
  /** Positions filled so far (the next token goes to this position). */
  readonly length: number;
  /** Append `token` at the next position with `routing` (per MoE layer, [E]) and return the logits there. */
  step(token: number, routing: ParamArray[]): Promise<StepResult>;
  /** Append several tokens with the same routing; the logits at the last one. */
  prefill(tokens: readonly number[], routing: ParamArray[]): Promise<StepResult>;
  /** Start a new sequence at position 0 (the compiled graph is kept). */
  reset(): void;
  dispose(): void;
}

const floatArray = (dtype: string, n: number): ParamArray => (dtype === 'float64' ? new Float64Array(n) : new Float32Array(n));

export class CachedDecoder implements Decoder {
  private pos = 0;
  private merged: number[] | undefined;
  private constructor(
    private readonly model: ModelConfig,
    private readonly weights: Record<string, ParamArray>,
    private readonly params: ResidentParams,
    private readonly session: Session,
    readonly capacity: number,
    private readonly caches: [ResidentValue[], ResidentValue[]], // [current, next], keys then values per layer
    private readonly wantFfnInputs: boolean,
  ) {}

  static async create(model: ModelConfig, weights: Record<string, ParamArray>, o: { capacity?: number; threads?: number; ffnInputs?: boolean; device?: Device } = {}): Promise<CachedDecoder> {
    const device = o.device ?? CPU;
    // The graph is the dense model's; a MoE model's FFN slots take its experts merged for the routing.
    const c: ModelConfig = { ...model, experts: 1 };
    const host: Record<string, ParamArray> = {};
    for (const s of paramSpecs(c)) {
      const size = s.shape.reduce((a, b) => a * b, 1);
      host[s.name] = isMoe(model) && s.role === 'ffn' ? (c.dtype === 'float64' ? new Float64Array(size) : new Float32Array(size)) : weights[s.name]!;
    }
    const params = new Params(c, host, device);
    const C = o.capacity ?? c.contextLength;
    const g = new G.Graph();
    const m = buildLoryDecode(g, c, { batch: 1, capacity: C });
    const outputs: Record<string, G.Tensor> = { logits: m.logits };
    m.presentKeys.forEach((t, l) => (outputs[`present/layer${l}/key`] = t));
    m.presentValues.forEach((t, l) => (outputs[`present/layer${l}/value`] = t));
    m.ffnInputs.forEach((t, l) => (outputs[`ffn_input/layer${l}`] = t));
    const exported = G.exportModel(g, { outputs, inputs: m.inputs, graphName: `decode_${C}` });
    const session = await loadRuntime().createSession(exported.bytes, { ...modelSessionOptions(c, device.provider), ...deviceSessionOptions(device), ...(o.threads ? { intraOpThreads: o.threads } : {}) });
    const shape = [1, c.nHeads, C, headDim(c)];
    // The key/value caches live where the graph runs: a step reads one set and writes the other in place.
    const set = () => Array.from({ length: 2 * c.nLayers }, () => loadRuntime().tensor(c.dtype, shape, undefined, device.name));
    return new CachedDecoder(model, weights, params, session, C, [set(), set()], o.ffnInputs ?? false);
  }

  get length(): number {
    return this.pos;
  }

  /** Rows past the new position are never attended (the attend mask stops at p), so nothing is cleared. */
  reset(): void {
    this.pos = 0;
  }

  /** Merge the experts for `routing` into the FFN parameters, unless they already hold that merge. */
  private mergeFor(routing: ParamArray[]): void {
    if (!isMoe(this.model)) return;
    const flat = routing.flatMap((w) => [...w]);
    if (this.merged && this.merged.length === flat.length && this.merged.every((v, i) => v === flat[i])) return;
    for (let l = 0; l < this.model.nLayers; l++) {
      const m = mergeLayerExperts(this.model, this.weights, l, routing[l]!);
      for (const w of ['w_gate', 'w_up', 'w_down'] as const) this.params.set(PARAM.ffn(l, w), m[w]);
    }
    this.merged = flat;
  }

  async step(token: number, routing: ParamArray[]): Promise<StepResult> {
    this.mergeFor(routing);
    const c = this.params.config;
    const L = c.nLayers;
    const C = this.capacity;
    const p = this.pos;
    if (p >= C) throw new Error(`the key/value cache is full (${C} positions)`);
    const write = floatArray(c.dtype, C);
    write[p] = 1;
    const attend = new Uint8Array(C);
    attend.fill(1, 0, p + 1);
    const [cur, next] = this.caches;
    const feeds: Record<string, Feed> = {
      tokens: { dtype: 'int64', shape: [1, 1], data: BigInt64Array.of(BigInt(token)) },
      [DECODE_INPUT.position]: { dtype: 'int64', shape: [1], data: BigInt64Array.of(BigInt(p)) },
      [DECODE_INPUT.writeMask]: { dtype: c.dtype, shape: [1, 1, C, 1], data: write },
      [DECODE_INPUT.attendMask]: { dtype: 'bool', shape: [1, 1, 1, C], data: attend },
    };
    for (let l = 0; l < L; l++) {
      feeds[DECODE_INPUT.pastKey(l)] = cur[l]!;
      feeds[DECODE_INPUT.pastValue(l)] = cur[L + l]!;
    }
    for (const info of this.session.inputs) if (!(info.name in feeds)) feeds[info.name] = this.params.get(info.name);
    const into: Record<string, ResidentValue> = {};
    for (let l = 0; l < L; l++) {
      into[`present/layer${l}/key`] = next[l]!;
      into[`present/layer${l}/value`] = next[L + l]!;
    }
    const ffnNames = this.wantFfnInputs ? Array.from({ length: L }, (_, l) => `ffn_input/layer${l}`) : [];
    const out = await this.session.run(feeds, { outputs: ['logits', ...Object.keys(into), ...ffnNames], into });
    const read = (name: string) => {
      const v = out[name]!;
      const data = v.read() as ParamArray;
      v.dispose();
      return data;
    };
    this.caches.reverse();
    this.pos++;
    return { logits: read('logits'), ...(ffnNames.length ? { ffnInputs: ffnNames.map(read) } : {}) };
  }

  async prefill(tokens: readonly number[], routing: ParamArray[]): Promise<StepResult> {
    let last: StepResult | undefined;
    for (const t of tokens) last = await this.step(t, routing);
    if (!last) throw new Error('prefill: no tokens');
    return last;
  }

  dispose(): void {
    this.session.dispose();
    this.params.dispose();
    for (const set of this.caches) for (const v of set) v.dispose();
  }
}

export class FullDecoder implements Decoder {
  private readonly tokens: number[] = [];
  private constructor(
    private readonly graph: ForwardGraph,
    private readonly pad: number,
    private readonly V: number,
  ) {}

  static async create(params: ResidentParams, o: { capacity?: number; threads?: number; pad?: number } = {}): Promise<FullDecoder> {
    const c = params.config;
    const C = o.capacity ?? c.contextLength;
    // Lory: the routing weights given to step(); token-level kinds route every token themselves.
    const graph = await compileForward(params, { batch: 1, seq: C, routing: isLoryMoe(c) ? 'fixed' : 'segment', ...(o.threads ? { threads: o.threads } : {}) });
    return new FullDecoder(graph, o.pad ?? 0, c.vocabSize);
  }

  get capacity(): number {
    return this.graph.seq;
  }
  get length(): number {
    return this.tokens.length;
  }

  reset(): void {
    this.tokens.length = 0;
  }

  /** Routing must stay the same for the whole sequence (prompt routing): it is applied to every position. */
  async step(token: number, routing: ParamArray[]): Promise<StepResult> {
    const p = this.tokens.length;
    if (p >= this.capacity) throw new Error(`the context is full (${this.capacity} positions)`);
    this.tokens.push(token);
    const ids = new Int32Array(this.capacity).fill(this.pad);
    ids.set(this.tokens);
    const out = await this.graph.run(ids, routing.length ? routing : undefined);
    return { logits: out.logits!.slice(p * this.V, (p + 1) * this.V) };
  }

  async prefill(tokens: readonly number[], routing: ParamArray[]): Promise<StepResult> {
    if (tokens.length === 0) throw new Error('prefill: no tokens');
    this.tokens.push(...tokens.slice(0, -1));
    return this.step(tokens[tokens.length - 1]!, routing);
  }

  dispose(): void {
    this.graph.dispose();
  }
}
