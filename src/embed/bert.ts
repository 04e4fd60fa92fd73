/**
 * A BERT sentence encoder (all-MiniLM-L6-v2 and kin) as a lory graph: embeddings (word + position
 * + token type 0) with LayerNorm, post-LN transformer layers (self-attention, GELU FFN), masked mean
 * pooling over the real tokens, L2 normalisation. Forward only. Weights are graph parameters, so
 * one resident copy serves the graphs of every (batch, length) shape.
 */
import * as G from '../graph/index.js';
import { InputError } from '../artifacts/index.js';
import type { FloatTensor } from './safetensors.js';

export interface BertConfig {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  maxPositions: number;
  layerNormEps: number;
}

export function bertConfigFrom(json: Record<string, unknown>): BertConfig {
  const num = (key: string) => {
    const v = json[key];
    if (typeof v !== 'number') throw new InputError(`BERT config: '${key}' is missing or not a number`);
    return v;
  };
  if (json.hidden_act !== undefined && json.hidden_act !== 'gelu') throw new InputError(`BERT config: hidden_act '${String(json.hidden_act)}' is not supported (only gelu)`);
  return {
    vocab: num('vocab_size'),
    hidden: num('hidden_size'),
    layers: num('num_hidden_layers'),
    heads: num('num_attention_heads'),
    intermediate: num('intermediate_size'),
    maxPositions: num('max_position_embeddings'),
    layerNormEps: typeof json.layer_norm_eps === 'number' ? json.layer_norm_eps : 1e-12,
  };
}

/** Parameter names and shapes of the graph, as lory names them (Linear weights stored [in, out]). */
export function bertParameters(c: BertConfig): Array<{ name: string; shape: number[] }> {
  const { hidden: d, intermediate: f } = c;
  const ps = [
    { name: 'embeddings.word', shape: [c.vocab, d] },
    { name: 'embeddings.position', shape: [c.maxPositions, d] },
    { name: 'embeddings.token_type0', shape: [d] },
    { name: 'embeddings.ln.weight', shape: [d] },
    { name: 'embeddings.ln.bias', shape: [d] },
  ];
  for (let l = 0; l < c.layers; l++) {
    for (const m of ['q', 'k', 'v', 'o']) ps.push({ name: `layer${l}.attn.${m}.weight`, shape: [d, d] }, { name: `layer${l}.attn.${m}.bias`, shape: [d] });
    ps.push(
      { name: `layer${l}.attn.ln.weight`, shape: [d] },
      { name: `layer${l}.attn.ln.bias`, shape: [d] },
      { name: `layer${l}.ffn.up.weight`, shape: [d, f] },
      { name: `layer${l}.ffn.up.bias`, shape: [f] },
      { name: `layer${l}.ffn.down.weight`, shape: [f, d] },
      { name: `layer${l}.ffn.down.bias`, shape: [d] },
      { name: `layer${l}.ffn.ln.weight`, shape: [d] },
      { name: `layer${l}.ffn.ln.bias`, shape: [d] },
    );
  }
  return ps;
}

function transposed(t: FloatTensor): Float32Array {
  const [rows, cols] = t.shape as [number, number];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = t.data[r * cols + c]!;
  return out;
}

/** Maps Hugging Face BertModel tensor names onto lory's parameters (PyTorch Linear [out, in] → [in, out]). */
export function bertWeightsFromHf(c: BertConfig, tensors: Map<string, FloatTensor>): Map<string, Float32Array> {
  const get = (name: string): FloatTensor => {
    const t = tensors.get(name) ?? tensors.get(`bert.${name}`);
    if (!t) throw new InputError(`encoder weights: tensor '${name}' is missing`);
    return t;
  };
  const out = new Map<string, Float32Array>();
  out.set('embeddings.word', get('embeddings.word_embeddings.weight').data);
  out.set('embeddings.position', get('embeddings.position_embeddings.weight').data);
  out.set('embeddings.token_type0', get('embeddings.token_type_embeddings.weight').data.slice(0, c.hidden));
  out.set('embeddings.ln.weight', get('embeddings.LayerNorm.weight').data);
  out.set('embeddings.ln.bias', get('embeddings.LayerNorm.bias').data);
  const hf: Record<string, string> = { q: 'attention.self.query', k: 'attention.self.key', v: 'attention.self.value', o: 'attention.output.dense' };
  for (let l = 0; l < c.layers; l++) {
    const p = `encoder.layer.${l}`;
    for (const [m, name] of Object.entries(hf)) {
      out.set(`layer${l}.attn.${m}.weight`, transposed(get(`${p}.${name}.weight`)));
      out.set(`layer${l}.attn.${m}.bias`, get(`${p}.${name}.bias`).data);
    }
    out.set(`layer${l}.attn.ln.weight`, get(`${p}.attention.output.LayerNorm.weight`).data);
    out.set(`layer${l}.attn.ln.bias`, get(`${p}.attention.output.LayerNorm.bias`).data);
    out.set(`layer${l}.ffn.up.weight`, transposed(get(`${p}.intermediate.dense.weight`)));
    out.set(`layer${l}.ffn.up.bias`, get(`${p}.intermediate.dense.bias`).data);
    out.set(`layer${l}.ffn.down.weight`, transposed(get(`${p}.output.dense.weight`)));
    out.set(`layer${l}.ffn.down.bias`, get(`${p}.output.dense.bias`).data);
    out.set(`layer${l}.ffn.ln.weight`, get(`${p}.output.LayerNorm.weight`).data);
    out.set(`layer${l}.ffn.ln.bias`, get(`${p}.output.LayerNorm.bias`).data);
  }
  for (const { name, shape } of bertParameters(c)) {
    const size = shape.reduce((a, b) => a * b, 1);
    if (out.get(name)?.length !== size) throw new InputError(`encoder weights: '${name}' should hold ${size} values`);
  }
  return out;
}

/**
 * The encoder graph for batches of B sequences of S tokens. Inputs: input_ids int64 [B,S],
 * attention_mask float32 [B,S] (1 = token, 0 = padding). Output: embedding float32 [B,d], unit length.
 */
export function buildBertGraph(c: BertConfig, B: number, S: number, constants?: Map<string, Float32Array>): { graph: G.Graph; embedding: G.Tensor } {
  if (S > c.maxPositions) throw new InputError(`the encoder takes at most ${c.maxPositions} tokens, asked for ${S}`);
  const g = new G.Graph();
  const { hidden: d, heads: H } = c;
  const hd = d / H;
  const eps = c.layerNormEps;
  // With `constants`, weights are baked in as initializers (ORT can pre-pack them); else graph inputs.
  const p = (name: string, shape: number[]) => (constants ? g.constant('float32', shape, constants.get(name)!) : g.param(name, shape));
  const ids = g.input('input_ids', 'int64', [B, S]);
  const mask = g.input('attention_mask', 'float32', [B, S]);

  let h = g.scope('embeddings', () => {
    const words = G.embedding(p('embeddings.word', [c.vocab, d]), ids); // [B,S,d]
    const positions = G.slice(p('embeddings.position', [c.maxPositions, d]), 0, 0, S); // [S,d]
    const x = G.add(G.add(words, positions), p('embeddings.token_type0', [d])); // [B,S,d]
    return G.layerNorm(x, p('embeddings.ln.weight', [d]), p('embeddings.ln.bias', [d]), eps);
  });
  // Padding gets a large negative score before the softmax: [B,1,1,S].
  const maskBias = G.reshape(G.mul(G.sub(1, mask), -1e9), [B, 1, 1, S]);
  const linear = (x: G.Tensor, name: string, din: number, dout: number) => G.add(G.matmul(x, p(`${name}.weight`, [din, dout])), p(`${name}.bias`, [dout]));

  for (let l = 0; l < c.layers; l++) {
    h = g.scope(`layer${l}`, () => {
      const x = h;
      const attn = g.scope('attn', () => {
        const heads = (m: string) => G.transpose(G.reshape(linear(x, `layer${l}.attn.${m}`, d, d), [B, S, H, hd]), [0, 2, 1, 3]); // [B,H,S,hd]
        const scores = G.add(G.mul(G.matmul(heads('q'), G.transposeLast(heads('k'))), 1 / Math.sqrt(hd)), maskBias); // [B,H,S,S]
        const context = G.reshape(G.transpose(G.matmul(G.softmax(scores, -1), heads('v')), [0, 2, 1, 3]), [B, S, d]); // [B,S,d]
        return G.layerNorm(G.add(x, linear(context, `layer${l}.attn.o`, d, d)), p(`layer${l}.attn.ln.weight`, [d]), p(`layer${l}.attn.ln.bias`, [d]), eps);
      });
      return g.scope('ffn', () => {
        const up = G.gelu(linear(attn, `layer${l}.ffn.up`, d, c.intermediate)); // [B,S,f]
        return G.layerNorm(G.add(attn, linear(up, `layer${l}.ffn.down`, c.intermediate, d)), p(`layer${l}.ffn.ln.weight`, [d]), p(`layer${l}.ffn.ln.bias`, [d]), eps);
      });
    });
  }

  const embedding = g.scope('pool', () => {
    const m = G.reshape(mask, [B, S, 1]);
    const summed = G.reduceSum(G.mul(h, m), 1); // [B,d]
    const count = G.maximum(G.reduceSum(m, 1), 1e-9); // [B,1]
    const mean = G.div(summed, count);
    const norm = G.maximum(G.sqrt(G.reduceSum(G.mul(mean, mean), -1, true)), 1e-12); // [B,1]
    return G.div(mean, norm); // [B,d]
  });
  return { graph: g, embedding };
}
