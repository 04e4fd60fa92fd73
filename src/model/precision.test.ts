/**
 * train.precision bf16 on the Lory model: which ops the policy puts in bf16 (every product of the
 * model but the router; never a norm, softmax or the loss), that fp32 leaves the train step's bytes
 * as they were, that the real graph is valid ONNX whose types line up, and the emulated graph's loss
 * and gradients against a float64 TypeScript reference of a one-layer model that rounds to bf16 at
 * the same places.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as G from '../graph/index.js';
import { compileTrainStep, type TrainStepSpec } from '../graph/compile/train-step.js';
import { bf16 } from '../graph/testing/bf16.js';
import { relativeError } from '../graph/testing/compare.js';
import { normalArray, rng } from '../graph/testing/random.js';
import { loadRuntime } from '../runtime/index.js';
import { resolveModelConfig, type ModelConfig } from './config.js';
import { buildLory, loryTrainSpec } from './model.js';
import { modelSessionOptions } from './moe.js';
import { PARAM, paramSpecs, type ParamValues } from './params.js';
import { modelRunner, randomTokens } from './testing.js';

const tiny = (over: Partial<ModelConfig> = {}) => resolveModelConfig({ vocabSize: 64, dModel: 32, nLayers: 1, nHeads: 2, dFf: 64, contextLength: 16, segmentLength: 8, ffnImpl: 'standard', ...over });
const SHAPE = { batch: 2, seq: 16 };

/** The forward nodes of a compiled train step (the backward's are named grad/…, the optimizer's opt/…). */
const forwardNodes = (g: G.Graph) => g.nodes.filter((n) => n.name.startsWith('model/') && !n.name.includes('/grad/'));
const castTo = (t: G.Tensor, dtype: string) => t.node?.def.type === 'cast' && t.dtype === dtype;

describe('train.precision bf16: where the casts go', () => {
  for (const [label, c, products, router] of [
    ['dense', tiny(), 10, 0], //                                      q k v o, q·kᵀ, p·v, gate up down, head
    ['Lory (standard FFN)', tiny({ experts: 4 }), 10, 1], //          the same, the merged FFN's 3; the router stays fp32
    ['Lory (fused FFN)', tiny({ experts: 4, ffnImpl: 'custom' }), 8, 1], // 6 attention products, the fused FFN op, the head
  ] as const) {
    it(`${label}: every product of the model but the router takes bf16 operands and gives a bf16 result, cast back to fp32; nothing else is bf16`, () => {
      const step = compileTrainStep(loryTrainSpec(c, { ...SHAPE, precision: 'real' }));
      const fwd = forwardNodes(step.graph);
      const low = fwd.filter((n) => n.def.lowPrecision);
      assert.equal(low.filter((n) => n.inputs.every((t) => t.dtype === 'bfloat16')).length, products, low.map((n) => n.name).join(', '));
      for (const n of low) {
        const routerProduct = n.name.includes('/router/');
        assert.ok(n.inputs.every((t) => (routerProduct ? t.dtype === 'float32' && !castTo(t, 'float32') : castTo(t, 'bfloat16'))), `${n.name}: operands`);
        assert.ok(n.outputs.every((t) => t.dtype === (routerProduct ? 'float32' : 'bfloat16')), `${n.name}: results`);
      }
      assert.equal(low.filter((n) => n.name.includes('/router/')).length, router);
      if (c.ffnImpl === 'custom') assert.ok(low.some((n) => n.def.type === 'ai.lory.LoryMoEFFNTrain'), 'the fused FFN is among them');
      // Only casts next to a product touch bf16: norms, softmax (attention and routing), the loss read fp32.
      for (const n of fwd.filter((n) => !n.def.lowPrecision && n.def.type !== 'cast')) {
        assert.ok([...n.inputs, ...n.outputs].every((t) => t.dtype !== 'bfloat16'), `${n.name} (${n.def.type}) touches bf16`);
      }
      for (const type of ['rmsNorm', 'softmax', 'crossEntropy']) assert.ok(fwd.some((n) => n.def.type === type), type);
      const casts = fwd.filter((n) => n.def.type === 'cast');
      const feedsProduct = (n: G.Node) => fwd.some((m) => m.def.lowPrecision && m.inputs.includes(n.outputs[0]!));
      const readsProduct = (n: G.Node) => !!n.inputs[0]!.node?.def.lowPrecision;
      assert.ok(casts.every((n) => feedsProduct(n) || readsProduct(n)), 'every cast is an operand or a result of a product');
      assert.ok(step.params.every((p) => p.dtype === 'float32') && step.state.every((s) => s.dtype === 'float32'), 'master weights and AdamW state fp32');
    });
  }

  it('fp32 builds the train step graphs byte for byte as the model alone does (no precision policy)', () => {
    for (const c of [tiny(), tiny({ experts: 4 })]) {
      const plain: TrainStepSpec = { ...loryTrainSpec(c, SHAPE), build: (g) => ({ loss: buildLory(g, c, { ...SHAPE, routing: 'segment', training: true }).loss! }) };
      const withRouting = loryTrainSpec(c, { ...SHAPE, precision: G.precisionRealisation('fp32', 'cuda') });
      const a = compileTrainStep(plain);
      const b = compileTrainStep({ ...withRouting, build: (g) => ({ loss: withRouting.build(g).loss }) });
      assert.deepEqual(b.step.bytes, a.step.bytes);
      assert.equal(b.graph.nodes.filter((n) => n.def.type === 'cast' && n.outputs[0]!.dtype === 'bfloat16').length, 0);
    }
  });

  it('the real (GPU) graph is valid ONNX with consistent types: ONNX Runtime resolves it and stops only at the missing CPU bf16 MatMul kernel', async () => {
    for (const c of [tiny(), tiny({ experts: 4 })]) {
      const step = compileTrainStep(loryTrainSpec(c, { ...SHAPE, precision: 'real' }));
      await assert.rejects(loadRuntime().createSession(step.step.bytes, { intraOpThreads: 1, ...modelSessionOptions(c) }), (e: Error) => {
        assert.doesNotMatch(e.message, /Type Error|invalid model|not a registered/i);
        assert.match(e.message, /Could not find an implementation for MatMul\(13\) node with name 'model\/layer0\/attn\/q_proj\/MatMul'/);
        return true;
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A float64 reference of the one-layer dense model with the bf16 roundings of the emulated graph.

type Round = (x: number) => number;

/** y[m,n] = R(Σ_k R(a[m,k])·R(b[k,n])): a product as the policy computes it. */
function product(a: Float64Array, b: ArrayLike<number>, m: number, k: number, n: number, r: Round): Float64Array {
  const ra = a.map(r);
  const rb = Float64Array.from(b, r);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let s = 0;
    for (let q = 0; q < k; q++) s += ra[i * k + q]! * rb[q * n + j]!;
    out[i * n + j] = r(s);
  }
  return out;
}

function rmsNorm(x: Float64Array, w: ArrayLike<number>, d: number, eps: number): { y: Float64Array; xhat: Float64Array } {
  const y = new Float64Array(x.length);
  const xhat = new Float64Array(x.length);
  for (let row = 0; row < x.length / d; row++) {
    let ms = 0;
    for (let j = 0; j < d; j++) ms += x[row * d + j]! ** 2;
    const inv = 1 / Math.sqrt(ms / d + Math.fround(eps));
    for (let j = 0; j < d; j++) {
      xhat[row * d + j] = x[row * d + j]! * inv;
      y[row * d + j] = xhat[row * d + j]! * w[j]!;
    }
  }
  return { y, xhat };
}

const transposeOf = (a: ArrayLike<number>, rows: number, cols: number) => Float64Array.from({ length: rows * cols }, (_, i) => a[(i % rows) * cols + Math.floor(i / rows)]!);

/** Loss, logits, and the gradients of lm_head and final_norm of a one-layer dense model. */
function reference(c: ModelConfig, p: ParamValues, tokens: number[], targets: number[], B: number, S: number, r: Round) {
  const { dModel: d, dFf: f, vocabSize: V, nHeads: H } = c;
  const hd = d / H;
  const N = B * S;
  const h0 = new Float64Array(N * d);
  tokens.forEach((t, i) => h0.set(p[PARAM.embed]!.subarray(t * d, (t + 1) * d), i * d));
  const mm = (a: Float64Array, w: string, k: number, n: number) => product(a, p[w]!, a.length / k, k, n, r);

  const xa = rmsNorm(h0, p[PARAM.attnNorm(0)]!, d, c.normEps).y;
  const [q, k, v] = [mm(xa, PARAM.attn(0, 'wq'), d, d), mm(xa, PARAM.attn(0, 'wk'), d, d), mm(xa, PARAM.attn(0, 'wv'), d, d)];
  const cos = new Float32Array(S * (hd / 2));
  const sin = new Float32Array(S * (hd / 2));
  for (let s = 0; s < S; s++) for (let i = 0; i < hd / 2; i++) {
    const angle = s * Math.pow(c.ropeBase, (-2 * i) / hd);
    cos[s * (hd / 2) + i] = Math.cos(angle);
    sin[s * (hd / 2) + i] = Math.sin(angle);
  }
  const scale = Math.fround(1 / Math.sqrt(hd));
  // Per (batch, head): [S,hd] blocks of q (scaled, rotated), k (rotated), v.
  const head = (x: Float64Array, b: number, h: number, rotate: boolean, mul = 1) => {
    const out = new Float64Array(S * hd);
    for (let s = 0; s < S; s++) for (let e = 0; e < hd; e++) out[s * hd + e] = x[(b * S + s) * d + h * hd + e]! * mul;
    if (!rotate) return out;
    const rot = new Float64Array(S * hd);
    for (let s = 0; s < S; s++) for (let i = 0; i < hd / 2; i++) {
      const [x1, x2, cs, sn] = [out[s * hd + i]!, out[s * hd + i + hd / 2]!, cos[s * (hd / 2) + i]!, sin[s * (hd / 2) + i]!];
      rot[s * hd + i] = x1 * cs - x2 * sn;
      rot[s * hd + i + hd / 2] = x2 * cs + x1 * sn;
    }
    return rot;
  };
  const o = new Float64Array(N * d);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
    const [qh, kh, vh] = [head(q, b, h, true, scale), head(k, b, h, true), head(v, b, h, false)];
    const scores = product(qh, transposeOf(kh, S, hd), S, hd, S, r);
    const probs = new Float64Array(S * S);
    for (let i = 0; i < S; i++) {
      const m = Math.max(...scores.subarray(i * S, i * S + i + 1));
      let z = 0;
      for (let j = 0; j <= i; j++) z += (probs[i * S + j] = Math.exp(scores[i * S + j]! - m));
      for (let j = 0; j <= i; j++) probs[i * S + j]! /= z;
    }
    const oh = product(probs, vh, S, S, hd, r);
    for (let s = 0; s < S; s++) for (let e = 0; e < hd; e++) o[(b * S + s) * d + h * hd + e] = oh[s * hd + e]!;
  }
  const attn = mm(o, PARAM.attn(0, 'wo'), d, d);
  const h1 = h0.map((x, i) => x + attn[i]!);
  const xf = rmsNorm(h1, p[PARAM.ffnNorm(0)]!, d, c.normEps).y;
  const gate = mm(xf, PARAM.ffn(0, 'w_gate'), d, f).map((x) => x / (1 + Math.exp(-x)));
  const up = mm(xf, PARAM.ffn(0, 'w_up'), d, f);
  const ffn = mm(gate.map((x, i) => x * up[i]!), PARAM.ffn(0, 'w_down'), f, d);
  const h2 = h1.map((x, i) => x + ffn[i]!);
  const { y: xn, xhat } = rmsNorm(h2, p[PARAM.finalNorm]!, d, c.normEps);
  const logits = mm(xn, PARAM.lmHead, d, V);

  let loss = 0;
  const dlogits = new Float64Array(N * V);
  for (let row = 0; row < N; row++) {
    const l = logits.subarray(row * V, (row + 1) * V);
    const m = Math.max(...l);
    let z = 0;
    for (const x of l) z += Math.exp(x - m);
    loss += m + Math.log(z) - l[targets[row]!]!;
    for (let j = 0; j < V; j++) dlogits[row * V + j] = (Math.exp(l[j]! - m) / z - (j === targets[row] ? 1 : 0)) / N;
  }
  // Backward of the head: the incoming gradient is rounded at the product's result, then as above.
  const gHead = product(transposeOf(xn, N, d), dlogits, d, N, V, r); //                  R(R(xn)ᵀ·R(dlogits))
  const dxn = product(dlogits, transposeOf(p[PARAM.lmHead]!, d, V), N, V, d, r); //       R(R(dlogits)·R(W)ᵀ)
  const gNorm = new Float64Array(d);
  for (let i = 0; i < N * d; i++) gNorm[i % d] = gNorm[i % d]! + dxn[i]! * xhat[i]!;
  return { loss: loss / N, logits, grads: { [PARAM.lmHead]: gHead, [PARAM.finalNorm]: gNorm } };
}

/** Weights large enough that the logits spread over a few units (bf16 rounding then moves the loss visibly). */
function weights(c: ModelConfig, seed: number): ParamValues {
  const rand = rng(seed);
  const out: ParamValues = {};
  for (const s of paramSpecs(c)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    out[s.name] = s.role === 'norm' ? normalArray(n, rand, 0.1).map((x) => 1 + x) : normalArray(n, rand, s.role === 'embedding' ? 1 : 1 / Math.sqrt(s.shape[s.shape.length - 2]!) * (s.name === PARAM.lmHead ? 2 : 1));
  }
  return out;
}

describe('train.precision bf16, emulated: the one-layer model against a float64 reference rounding at the same places', () => {
  const c = tiny();
  const { batch: B, seq: S } = SHAPE;
  const params = weights(c, 3);
  const tokens = randomTokens(B * S, c.vocabSize, 11);
  const targets = randomTokens(B * S, c.vocabSize, 12);
  const run = async (precision?: G.Realisation) => {
    const runner = await modelRunner(c, { ...SHAPE }, { grads: true, ...(precision ? { precision } : {}) });
    try {
      return await runner.run(params, { tokens, targets });
    } finally {
      await runner.dispose();
    }
  };

  it('loss, logits and the head gradients match the bf16 reference, are farther from the fp32 one, and repeat bit for bit', async () => {
    const emulated = await run('emulated');
    const fp32 = await run();
    const ref = reference(c, params, tokens, targets, B, S, bf16);
    const ref64 = reference(c, params, tokens, targets, B, S, (x) => x);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

    const errs = {
      loss: rel(emulated.loss, ref.loss),
      logits: relativeError(emulated.logits, ref.logits),
      head: relativeError(emulated.grads[PARAM.lmHead]!, ref.grads[PARAM.lmHead]!),
      norm: relativeError(emulated.grads[PARAM.finalNorm]!, ref.grads[PARAM.finalNorm]!),
    };
    const drift = {
      loss: rel(emulated.loss, ref64.loss),
      logits: relativeError(emulated.logits, ref64.logits),
      fp32Loss: rel(fp32.loss, ref64.loss),
      fp32Logits: relativeError(fp32.logits, ref64.logits),
    };
    const detail = JSON.stringify({ errs, drift });
    // The graph computes in fp32, the reference in float64: a value within float32 error of a bf16
    // rounding boundary may round the other way (one bf16 step, 2⁻⁸ relative, on that element).
    // Such flips bound the agreement: at most one step of the largest logit or gradient entry, and
    // diluted by the mean in the loss (measured: logits and head gradient identical, norm gradient
    // 1.1e-7, loss 5.5e-10). The distance to the unrounded model is bf16's own rounding, far larger.
    assert.ok(errs.loss < 1e-6, detail);
    assert.ok(errs.logits <= 2 ** -8 && errs.head <= 2 ** -8 && errs.norm <= 2 ** -8, detail);
    // fp32 sits at float32 precision from the float64 model; bf16 moves the logits by a few bf16
    // steps (2⁻⁸ ≈ 3.9e-3; measured 9.6e-3 of the largest logit, the loss by 2.0e-4 relative).
    assert.ok(drift.fp32Logits < 1e-5 && drift.fp32Loss < 1e-6, detail);
    assert.ok(drift.logits > 2 ** -9 && drift.logits < 2 ** -3, detail);
    assert.ok(drift.loss > 10 * errs.loss, detail);

    const again = await run('emulated');
    assert.equal(again.loss, emulated.loss);
    assert.deepEqual(again.logits, emulated.logits);
    assert.deepEqual(again.grads, emulated.grads, 'a fresh graph and session give the same bits');
  });
});
