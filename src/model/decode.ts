/**
 * One decoding step with a key/value cache: the model on a single new position per sequence, reading
 * the keys and values of all earlier positions from a fixed-capacity cache and returning the cache with
 * this position's entries written in. Each step costs one position of every projection and FFN (plus
 * attention over the C cached keys), instead of a forward pass over the whole prefix.
 *
 * Static shapes: the cache holds C = capacity positions; the caller feeds
 *   position     [1]          int64   the new token's position p (RoPE angle)
 *   write_mask   [1,1,C,1]    float   1 at p, 0 elsewhere: K' = K·(1 − m) + k·m writes row p exactly
 *   attend_mask  [1,1,1,C]    bool    true for keys j ≤ p (causal; rows past p are never read)
 * The graph is the dense model's. A Lory model decodes with its experts merged for fixed routing
 * weights (merge.ts): the prompt's weights (the paper's inference mode), or weights the caller
 * re-decides at segment boundaries from the exported FFN inputs — one merged FFN per layer instead of
 * re-merging E experts at every step.
 */
import * as G from '../graph/index.js';
import type { Graph, Tensor } from '../graph/index.js';
import { headDim, isMoe, type ModelConfig } from './config.js';
import { ConfigError } from './errors.js';
import { INPUT } from './model.js';
import { denseFfn } from './moe.js';
import { PARAM, paramSpecs } from './params.js';

export const DECODE_INPUT = {
  position: 'position',
  writeMask: 'write_mask',
  attendMask: 'attend_mask',
  pastKey: (l: number) => `past/layer${l}/key`,
  pastValue: (l: number) => `past/layer${l}/value`,
};
export const DECODE_OUTPUT = {
  logits: 'logits',
  presentKey: (l: number) => `present/layer${l}/key`,
  presentValue: (l: number) => `present/layer${l}/value`,
  ffnInput: (l: number) => `ffn_input/layer${l}`,
};

export interface DecodeModel {
  tokens: Tensor; //        [B,1] int64
  logits: Tensor; //        [B,1,V]
  /** Per layer: the updated caches [B,H,C,hd]. */
  presentKeys: Tensor[];
  presentValues: Tensor[];
  /** Per layer: the FFN input of the new position [B,1,d] (what segment routing averages). */
  ffnInputs: Tensor[];
  /** Every graph input other than parameters, in a fixed order. */
  inputs: Tensor[];
  params: Record<string, Tensor>;
}

/** Declare the one-position decode step of `c` on `g` for `batch` sequences and a cache of `capacity`. */
export function buildLoryDecode(g: Graph, c: ModelConfig, o: { batch: number; capacity: number }): DecodeModel {
  const { batch: B, capacity: C } = o;
  const [d, H, hd] = [c.dModel, c.nHeads, headDim(c)];
  const dt = c.dtype;
  if (isMoe(c)) throw new ConfigError(`the decode graph is dense: merge the ${c.experts} experts for the routing weights first (mergeLayerExperts) and decode with experts: 1`);
  if (!Number.isInteger(C) || C < 1 || C > c.contextLength) throw new ConfigError(`cache capacity ${C} must be in [1, ${c.contextLength}] (model.context_length)`);
  const params: Record<string, Tensor> = {};
  for (const s of paramSpecs(c)) params[s.name] = g.param(s.name, s.shape, { dtype: dt, group: s.group });
  const p = (name: string) => params[name]!;

  const tokens = g.input(INPUT.tokens, 'int64', [B, 1]);
  const position = g.input(DECODE_INPUT.position, 'int64', [1]);
  const writeMask = g.input(DECODE_INPUT.writeMask, dt, [1, 1, C, 1]);
  const attendMask = g.input(DECODE_INPUT.attendMask, 'bool', [1, 1, 1, C]);
  const pastK = Array.from({ length: c.nLayers }, (_, l) => g.input(DECODE_INPUT.pastKey(l), dt, [B, H, C, hd]));
  const pastV = Array.from({ length: c.nLayers }, (_, l) => g.input(DECODE_INPUT.pastValue(l), dt, [B, H, C, hd]));

  const tables = G.ropeTables(g, C, hd, dt, c.ropeBase); //                       cos, sin [C,hd/2]
  const cos = G.embedding(tables.cos, position); //                               [1,hd/2]  row p
  const sin = G.embedding(tables.sin, position); //                               [1,hd/2]
  const keep = G.sub(1, writeMask); //                                            [1,1,C,1]
  const negInf = g.scalar(-Infinity, dt);

  const presentKeys: Tensor[] = [];
  const presentValues: Tensor[] = [];
  const ffnInputs: Tensor[] = [];
  let h = g.scope('embed', () => G.embedding(p(PARAM.embed), tokens)); //          [B,1,d]
  for (let l = 0; l < c.nLayers; l++) {
    h = g.scope(`layer${l}`, () => {
      const xa = G.rmsNorm(h, p(PARAM.attnNorm(l)), c.normEps); //                 [B,1,d]
      const heads = (w: 'wq' | 'wk' | 'wv') => G.transpose(G.reshape(G.matmul(xa, p(PARAM.attn(l, w))), [B, 1, H, hd]), [0, 2, 1, 3]); // [B,H,1,hd]
      const attn = g.scope('attn', () => {
        const q = G.rope(G.mul(heads('wq'), 1 / Math.sqrt(hd)), cos, sin); //      [B,H,1,hd]  q/√hd at angle p
        const k = G.rope(heads('wk'), cos, sin); //                                [B,H,1,hd]
        const v = heads('wv'); //                                                  [B,H,1,hd]
        const K = G.add(G.mul(pastK[l]!, keep), G.mul(k, writeMask)); //           [B,H,C,hd]  row p ← k
        const V = G.add(G.mul(pastV[l]!, keep), G.mul(v, writeMask)); //           [B,H,C,hd]
        presentKeys.push(K);
        presentValues.push(V);
        const scores = G.where(attendMask, G.matmul(q, G.transposeLast(K)), negInf); // [B,H,1,C]  keys j ≤ p
        const o = G.reshape(G.transpose(G.matmul(G.softmax(scores, -1), V), [0, 2, 1, 3]), [B, 1, d]); // [B,1,d]
        return G.matmul(o, p(PARAM.attn(l, 'wo'))); //                             [B,1,d]
      });
      const h1 = G.add(h, attn); //                                                [B,1,d]
      const xf = G.rmsNorm(h1, p(PARAM.ffnNorm(l)), c.normEps); //                 [B,1,d]   FFN input
      ffnInputs.push(xf);
      const [wg, wu, wd] = [p(PARAM.ffn(l, 'w_gate')), p(PARAM.ffn(l, 'w_up')), p(PARAM.ffn(l, 'w_down'))];
      const y = g.scope('ffn', () => denseFfn(xf, wg, wu, wd)); //                 [B,1,d]
      return G.add(h1, y); //                                                      [B,1,d]
    });
  }
  const logits = g.scope('head', () => G.matmul(G.rmsNorm(h, p(PARAM.finalNorm), c.normEps), p(PARAM.lmHead))); // [B,1,V]
  return { tokens, logits, presentKeys, presentValues, ffnInputs, inputs: [tokens, position, writeMask, attendMask, ...pastK, ...pastV], params };
}
