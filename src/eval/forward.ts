/**
 * Inference graphs over a set of parameters: the model compiled for one (batch, sequence, routing)
 * shape, parameters uploaded once as resident values and shared by every graph of the same weights.
 * Used by perplexity evaluation, expert inspection and generation.
 */
import * as G from '../graph/index.js';
import { buildLory, modelSessionOptions, paramSpecs, type BuildOptions, type ModelConfig, type ParamArray } from '../model/index.js';
import { CPU, deviceSessionOptions, loadRuntime, type Device, type Feed, type ResidentValue, type Session } from '../runtime/index.js';

/** Parameters resident in native memory (host, or the GPU the graphs run on), fed to any graph built for the same config. */
export class ResidentParams {
  private readonly values = new Map<string, ResidentValue>();
  private readonly shapes: Map<string, number[]>;
  constructor(
    readonly config: ModelConfig,
    private readonly host: Record<string, ParamArray>,
    readonly device: Device = CPU,
  ) {
    this.shapes = new Map(paramSpecs(config).map((s) => [s.name, s.shape]));
  }
  /** The resident value of parameter `name` (uploaded on first use). */
  get(name: string): ResidentValue {
    let v = this.values.get(name);
    if (!v) {
      const data = this.host[name];
      if (!data) throw new Error(`no value for parameter ${name}`);
      const shape = this.shapes.get(name);
      if (!shape) throw new Error(`${name} is not a parameter of this model`);
      v = loadRuntime().tensor(this.config.dtype, shape, data, this.device.name);
      this.values.set(name, v);
    }
    return v;
  }
  /** Overwrite parameter `name` in place (e.g. experts merged for new routing weights). */
  set(name: string, data: ParamArray): void {
    this.host[name] = data;
    this.values.get(name)?.write(data);
  }
  dispose(): void {
    for (const v of this.values.values()) v.dispose();
    this.values.clear();
  }
}

export interface ForwardOutputs {
  /** [B,S,V] (absent when the graph was built without logits). */
  logits?: ParamArray;
  /** Per MoE layer: [B,N,E] (segment routing) or [B,E] (prompt/fixed). */
  routing: ParamArray[];
}

export interface ForwardGraph {
  readonly batch: number;
  readonly seq: number;
  /** tokens [B·S] row-major; routing inputs (fixed routing, or segment 1's weights) [B·E] per layer. */
  run(tokens: ArrayLike<number>, routingInputs?: ParamArray[]): Promise<ForwardOutputs>;
  dispose(): void;
}

export interface ForwardOptions extends Omit<BuildOptions, 'loss'> {
  /** Export the logits (default true); a prompt-routing graph only needs the routing weights. */
  logits?: boolean;
  threads?: number;
}

/** Compile the model for one shape; parameters come from `params` (reshaped views of the same values). */
export async function compileForward(params: ResidentParams, o: ForwardOptions): Promise<ForwardGraph> {
  const c = params.config;
  const g = new G.Graph();
  const m = buildLory(g, c, { ...o, loss: false, provider: params.device.provider });
  const outputs: Record<string, G.Tensor> = {};
  if (o.logits !== false) outputs.logits = m.logits;
  m.routing.forEach((w, l) => (outputs[`routing/${l}`] = w));
  const exported = G.exportModel(g, { outputs, inputs: [m.tokens, ...m.routingInputs], graphName: `forward_${o.routing ?? 'segment'}_${o.batch}x${o.seq}` });
  const session: Session = await loadRuntime().createSession(exported.bytes, {
    ...modelSessionOptions(c, params.device.provider),
    ...deviceSessionOptions(params.device),
    ...(o.threads ? { intraOpThreads: o.threads } : {}),
  });
  const { batch: B, seq: S } = o;
  return {
    batch: B,
    seq: S,
    async run(tokens, routingInputs) {
      if (tokens.length !== B * S) throw new Error(`forward: expected ${B * S} tokens, got ${tokens.length}`);
      const feeds: Record<string, Feed> = {};
      const ids = new BigInt64Array(B * S);
      for (let i = 0; i < ids.length; i++) ids[i] = BigInt(tokens[i]!);
      feeds[m.tokens.name] = { dtype: 'int64', shape: [B, S], data: ids };
      m.routingInputs.forEach((t, l) => {
        const data = routingInputs?.[l];
        if (!data) throw new Error(`forward: routing input ${t.name} not given`);
        feeds[t.name] = { dtype: c.dtype, shape: [...t.shape], data };
      });
      for (const info of session.inputs) {
        if (info.name in feeds) continue;
        if (!m.params[info.name]) throw new Error(`forward: unexpected graph input ${info.name}`);
        feeds[info.name] = params.get(info.name);
      }
      const out = await session.run(feeds);
      const read = (name: string) => {
        const v = out[name]!;
        const data = v.read() as ParamArray;
        v.dispose();
        return data;
      };
      return {
        ...(o.logits !== false ? { logits: read('logits') } : {}),
        routing: m.routing.map((_, l) => read(`routing/${l}`)),
      };
    },
    dispose() {
      session.dispose();
    },
  };
}
