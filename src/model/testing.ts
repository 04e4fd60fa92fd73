/**
 * Test helpers: build the model once, export logits, loss, routing weights and (optionally) every
 * parameter gradient, and run it through lory's runtime with host tensors.
 */
import * as G from '../graph/index.js';
import { loadModel, type HostTensor, type LoadedModel } from '../graph/testing/execute.js';
import type { SessionOptions } from '../runtime/index.js';
import type { ModelConfig } from './config.js';
import { buildLory, INPUT, type BuildOptions } from './model.js';
import { modelSessionOptions } from './moe.js';
import type { ParamArray, ParamValues } from './params.js';

export interface Batch {
  tokens: number[];
  targets?: number[];
  /** Fixed routing weights per layer, [B,E] each. */
  routing?: ParamArray[];
}

export interface RunResult {
  logits: ParamArray;
  loss: number;
  routing: ParamArray[];
  grads: ParamValues;
}

export interface Runner {
  run(params: ParamValues, batch: Batch): Promise<RunResult>;
  dispose(): Promise<void>;
  paramNames: string[];
}

const ids = (v: number[], shape: number[]): HostTensor => ({ dtype: 'int64', shape, data: BigInt64Array.from(v.map((x) => BigInt(x))) });

/** Compile the model with the requested outputs once; run it on any parameters and batch. */
export async function modelRunner(c: ModelConfig, o: BuildOptions, want: { grads?: boolean; session?: SessionOptions; precision?: G.Realisation } = {}): Promise<Runner> {
  const g = new G.Graph();
  const m = G.withPrecision(g, want.precision, () => buildLory(g, c, o));
  const outputs: Record<string, G.Tensor> = { logits: m.logits };
  if (m.loss) outputs.loss = m.loss;
  m.routing.forEach((w, l) => (outputs[`routing/${l}`] = w));
  const names = Object.keys(m.params);
  if (want.grads) {
    const grads = G.grad(m.loss!, names.map((n) => m.params[n]!));
    names.forEach((n, i) => (outputs[`grad/${n}`] = grads[i]!));
  }
  const exported = G.exportModel(g, { outputs, inputs: [m.tokens, ...(m.targets ? [m.targets] : []), ...m.routingInputs, ...names.map((n) => m.params[n]!)] });
  const session = want.session ?? {};
  const libraries = [...new Set([...(session.customOpLibraries ?? []), ...modelSessionOptions(c).customOpLibraries])];
  const model: LoadedModel = await loadModel(exported.bytes, { ...session, customOpLibraries: libraries });
  const { batch: B, seq: S } = o;
  return {
    paramNames: names,
    async run(params, batch) {
      const feeds: Record<string, HostTensor> = { [INPUT.tokens]: ids(batch.tokens, [B, S]) };
      if (m.targets) feeds[INPUT.targets] = ids(batch.targets ?? batch.tokens, [B, S]);
      m.routingInputs.forEach((t, l) => (feeds[t.name] = { dtype: c.dtype, shape: [...t.shape], data: batch.routing![l]! }));
      for (const n of names) {
        const p = m.params[n]!;
        const data = params[n];
        if (!data) throw new Error(`no value for parameter ${n}`);
        feeds[n] = { dtype: c.dtype, shape: [...p.shape], data };
      }
      const out = await model.run(feeds);
      const grads: ParamValues = {};
      if (want.grads) for (const n of names) grads[n] = out[`grad/${n}`]!.data as ParamArray;
      return {
        logits: out.logits!.data as ParamArray,
        loss: out.loss ? Number(out.loss.data[0]) : NaN,
        routing: m.routing.map((_, l) => out[`routing/${l}`]!.data as ParamArray),
        grads,
      };
    },
    dispose: () => model.dispose(),
  };
}

/** Largest |a − b| / (atol + rtol·|b|) over two arrays (≤ 1 means within tolerance). */
export function worstError(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number): { worst: number; at: number } {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!));
    if (!(e <= worst)) {
      worst = Number.isNaN(e) ? Infinity : e;
      at = i;
    }
  }
  return { worst, at };
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Deterministic token ids in [0, V). */
export function randomTokens(n: number, V: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) % V;
  });
}
