/**
 * A minimal LLaMA-style decoder (pre-norm RMSNorm, RoPE, causal attention, SwiGLU, untied output) for
 * tests and benchmarks of the graph engine. The real model, with Lory's MoE layers, is src/model's.
 */
import * as G from '../index.js';
import type { ModelOutputs } from '../compile/train-step.js';
import type { StateSlot } from '../compile/train-step.js';
import { normalArray, rng } from './random.js';

export interface TinyLlamaConfig {
  vocab: number;
  d: number;
  layers: number;
  heads: number;
  ffn: number;
  seq: number;
  batch: number;
}

export function buildTinyLlama(g: G.Graph, c: TinyLlamaConfig): ModelOutputs {
  const { batch: B, seq: T, d, heads: H, vocab: V } = c;
  const hd = d / H;
  const tokens = g.input('tokens', 'int64', [B, T]);
  const targets = g.input('targets', 'int64', [B, T]);
  const noDecay = { group: 'no_decay' };
  const { cos, sin } = G.ropeTables(g, T, hd);
  let h = g.scope('embed', () => G.embedding(g.param('embed', [V, d], noDecay), tokens)); // [B,T,d]
  for (let l = 0; l < c.layers; l++) {
    h = g.scope(`layer${l}`, () => {
      const p = (name: string, shape: number[], o = {}) => g.param(`layer${l}.${name}`, shape, o);
      const a = g.scope('attn', () => {
        const x = G.rmsNorm(h, p('attn_norm', [d], noDecay)); // [B,T,d]
        const heads = (name: string) =>
          g.scope(`${name}_proj`, () => G.transpose(G.reshape(G.matmul(x, p(`attn.w${name}`, [d, d])), [B, T, H, hd]), [0, 2, 1, 3])); // [B,H,T,hd]
        const q = G.rope(heads('q'), cos, sin);
        const k = G.rope(heads('k'), cos, sin);
        const v = heads('v');
        const scores = G.mul(G.matmul(q, G.transposeLast(k)), 1 / Math.sqrt(hd)); // [B,H,T,T]
        const probs = G.softmax(G.causalMask(scores), -1);
        const o = G.reshape(G.transpose(G.matmul(probs, v), [0, 2, 1, 3]), [B, T, d]); // [B,T,d]
        return g.scope('o_proj', () => G.matmul(o, p('attn.wo', [d, d])));
      });
      const h1 = G.add(h, a);
      const f = g.scope('ffn', () => {
        const x = G.rmsNorm(h1, p('ffn_norm', [d], noDecay));
        const gate = g.scope('gate_proj', () => G.silu(G.matmul(x, p('ffn.wg', [d, c.ffn])))); // [B,T,f]
        const up = g.scope('up_proj', () => G.matmul(x, p('ffn.wu', [d, c.ffn])));
        return g.scope('down_proj', () => G.matmul(G.mul(gate, up), p('ffn.wd', [c.ffn, d]))); // [B,T,d]
      });
      return G.add(h1, f);
    });
  }
  const logits = g.scope('head', () => G.matmul(G.rmsNorm(h, g.param('final_norm', [d], noDecay)), g.param('lm_head', [d, V]))); // [B,T,V]
  return { loss: g.scope('loss', () => G.crossEntropy(logits, targets)) };
}

/** Norm scales at 1, matrices N(0, 1/fan_in), embeddings N(0, 1). */
export function initParams(params: readonly StateSlot[], seed = 1): Record<string, Float32Array> {
  const rand = rng(seed);
  const out: Record<string, Float32Array> = {};
  for (const p of params) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (p.shape.length === 1) out[p.name] = new Float32Array(n).fill(1);
    else out[p.name] = normalArray(n, rand, p.name === 'embed' ? 1 : 1 / Math.sqrt(p.shape[0]!));
  }
  return out;
}
