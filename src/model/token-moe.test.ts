/** Top-k token choice and expert choice: against loop-by-loop references, finite differences, and the load-balancing formula. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as G from '../graph/index.js';
import { runModel, type HostTensor } from '../graph/testing/execute.js';
import { gradCheck } from '../graph/testing/gradcheck.js';
import { normalArray, rng } from '../graph/testing/random.js';
import { expertChoiceCapacity, expertChoiceMoe, loadBalancingLoss, topKCapacity, topKMoe, type TokenMoeOutput } from './token-moe.js';
import { worstError } from './testing.js';

const [Gn, n, d, f, E] = [2, 6, 4, 5, 3];

interface Weights {
  x: Float64Array; // [G,n,d]
  router: Float64Array; // [d,E]
  wg: Float64Array; // [E,d,f]
  wu: Float64Array;
  wd: Float64Array; // [E,f,d]
}

function randomWeights(seed: number): Weights {
  const r = rng(seed);
  const draw = (m: number, std: number) => Float64Array.from(normalArray(m, r, std));
  return { x: draw(Gn * n * d, 1), router: draw(d * E, 1.5), wg: draw(E * d * f, 0.5), wu: draw(E * d * f, 0.5), wd: draw(E * f * d, 0.5) };
}

/** Router probabilities of token (g, t): softmax(x·R). */
function probsOf(w: Weights, g: number, t: number): number[] {
  const logits = Array.from({ length: E }, (_, e) => {
    let s = 0;
    for (let k = 0; k < d; k++) s += w.x[(g * n + t) * d + k]! * w.router[k * E + e]!;
    return s;
  });
  const m = Math.max(...logits);
  const ex = logits.map((l) => Math.exp(l - m));
  const z = ex.reduce((a, b) => a + b, 0);
  return ex.map((v) => v / z);
}

/** Expert e's SwiGLU on token (g, t). */
function expertOn(w: Weights, e: number, g: number, t: number): number[] {
  const h = new Float64Array(f);
  for (let j = 0; j < f; j++) {
    let a = 0;
    let b = 0;
    for (let k = 0; k < d; k++) {
      const xv = w.x[(g * n + t) * d + k]!;
      a += xv * w.wg[(e * d + k) * f + j]!;
      b += xv * w.wu[(e * d + k) * f + j]!;
    }
    h[j] = (a / (1 + Math.exp(-a))) * b;
  }
  return Array.from({ length: d }, (_, o) => {
    let s = 0;
    for (let j = 0; j < f; j++) s += h[j]! * w.wd[(e * f + j) * d + o]!;
    return s;
  });
}

const addInto = (y: Float64Array, g: number, t: number, scale: number, v: number[]) => v.forEach((val, o) => (y[(g * n + t) * d + o]! += scale * val));

/** Every expert on every token, weighted by its router probability. */
function referenceMixture(w: Weights): Float64Array {
  const y = new Float64Array(Gn * n * d);
  for (let g = 0; g < Gn; g++) for (let t = 0; t < n; t++) probsOf(w, g, t).forEach((p, e) => addInto(y, g, t, p, expertOn(w, e, g, t)));
  return y;
}

/** Top-k, slots filled in token order, capacity C per expert and sequence; Switch loss over all tokens. */
function referenceTopK(w: Weights, k: number, C: number) {
  const y = new Float64Array(Gn * n * d);
  const counts = new Array<number>(E).fill(0);
  const meanP = new Array<number>(E).fill(0);
  let dropped = 0;
  for (let g = 0; g < Gn; g++) {
    const used = new Array<number>(E).fill(0);
    for (let t = 0; t < n; t++) {
      const p = probsOf(w, g, t);
      p.forEach((v, e) => (meanP[e]! += v / (Gn * n)));
      const top = p.map((v, e) => [v, e] as const).sort((a, b) => b[0] - a[0]).slice(0, k);
      const z = k === 1 ? 1 : top.reduce((s, [v]) => s + v, 0); // top-1 weights by p itself (Switch)
      for (const [v, e] of top) {
        counts[e]!++;
        if (used[e]! < C) {
          used[e]!++;
          addInto(y, g, t, v / z, expertOn(w, e, g, t));
        } else dropped++;
      }
    }
  }
  const load = counts.map((c) => c / (Gn * n * k));
  const balance = E * load.reduce((s, l, e) => s + l * meanP[e]!, 0);
  return { y, dropped: dropped / (Gn * n * k), load, balance };
}

/** Expert choice: each expert takes its C highest-scoring tokens of each sequence. */
function referenceExpertChoice(w: Weights, C: number) {
  const y = new Float64Array(Gn * n * d);
  let unchosen = 0;
  for (let g = 0; g < Gn; g++) {
    const p = Array.from({ length: n }, (_, t) => probsOf(w, g, t));
    const chosen = new Set<number>();
    for (let e = 0; e < E; e++) {
      const best = Array.from({ length: n }, (_, t) => t).sort((a, b) => p[b]![e]! - p[a]![e]!).slice(0, C);
      for (const t of best) {
        chosen.add(t);
        addInto(y, g, t, p[t]![e]!, expertOn(w, e, g, t));
      }
    }
    unchosen += n - chosen.size;
  }
  return { y, dropped: unchosen / (Gn * n) };
}

const host = (shape: number[], data: Float64Array): HostTensor => ({ dtype: 'float64', shape, data });

/** Build one layer on inputs x, router, wg, wu, wd and run it. */
async function runLayer(w: Weights, layer: (x: G.Tensor, mw: { router: G.Tensor; wg: G.Tensor; wu: G.Tensor; wd: G.Tensor }) => TokenMoeOutput) {
  const g = new G.Graph();
  const x = g.input('x', 'float64', [Gn, n, d]);
  const mw = { router: g.input('router', 'float64', [d, E]), wg: g.input('wg', 'float64', [E, d, f]), wu: g.input('wu', 'float64', [E, d, f]), wd: g.input('wd', 'float64', [E, f, d]) };
  const out = layer(x, mw);
  const outputs: Record<string, G.Tensor> = { y: out.y, dropped: out.dropped, z: out.zLoss };
  if (out.balance) outputs.balance = out.balance;
  if (out.load) outputs.load = out.load;
  const res = await runModel(G.exportModel(g, { outputs, inputs: [x, mw.router, mw.wg, mw.wu, mw.wd] }).bytes, {
    x: host([Gn, n, d], w.x),
    router: host([d, E], w.router),
    wg: host([E, d, f], w.wg),
    wu: host([E, d, f], w.wu),
    wd: host([E, f, d], w.wd),
  });
  const num = (k: string) => Number(res[k]!.data[0]);
  return { y: res.y!.data as Float64Array, dropped: num('dropped'), z: num('z'), balance: res.balance ? num('balance') : NaN, load: res.load ? Array.from(res.load.data as Float64Array) : [] };
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, what: string) => {
  const { worst, at } = worstError(a, b, 1e-12, 1e-13);
  assert.ok(worst <= 1, `${what}: at ${at}, ${a[at]} vs ${b[at]}`);
};

test('top-k token choice equals a loop-by-loop reference (k = 2 renormalised, k = 1 weighted by p), tokens dropped at capacity in token order included', async () => {
  const w = randomWeights(1);
  for (const [k, cf, C] of [[2, 0.5, 2], [1, 1, 2]] as const) {
    assert.equal(topKCapacity(n, E, k, cf), C);
    const got = await runLayer(w, (x, mw) => topKMoe(x, mw, { k, capacityFactor: cf }));
    const ref = referenceTopK(w, k, C);
    assert.ok(ref.dropped > 0.1, `k=${k}: the case drops assignments (${ref.dropped})`);
    close(got.y, ref.y, `k=${k}: y`);
    assert.ok(Math.abs(got.dropped - ref.dropped) < 1e-12, `k=${k}: dropped ${got.dropped} vs ${ref.dropped}`);
    close(got.load, ref.load, `k=${k}: load`);
    assert.ok(Math.abs(got.balance - ref.balance) < 1e-12, `k=${k}: balance ${got.balance} vs ${ref.balance}`);
  }
});

test('top-k with k = E and room for every token equals the softmax-weighted mixture of all experts', async () => {
  const w = randomWeights(2);
  assert.equal(topKCapacity(n, E, E, 1), n);
  const got = await runLayer(w, (x, mw) => topKMoe(x, mw, { k: E, capacityFactor: 1 }));
  close(got.y, referenceMixture(w), 'y');
  assert.equal(got.dropped, 0);
});

test('expert choice equals a loop-by-loop reference: each expert takes its top-C tokens of each sequence', async () => {
  const w = randomWeights(3);
  const C = expertChoiceCapacity(n, E, 1);
  assert.equal(C, 2);
  const got = await runLayer(w, (x, mw) => expertChoiceMoe(x, mw, { capacityFactor: 1 }));
  const ref = referenceExpertChoice(w, C);
  close(got.y, ref.y, 'y');
  assert.ok(Math.abs(got.dropped - ref.dropped) < 1e-12, `dropped ${got.dropped} vs ${ref.dropped}`);
});

test('expert choice with capacity = all tokens equals every expert on every token weighted by its score', async () => {
  const w = randomWeights(4);
  assert.equal(expertChoiceCapacity(n, E, E), n);
  const got = await runLayer(w, (x, mw) => expertChoiceMoe(x, mw, { capacityFactor: E }));
  close(got.y, referenceMixture(w), 'y');
  assert.equal(got.dropped, 0);
});

test('the router z-loss is the mean squared logsumexp of the router logits', async () => {
  const w = randomWeights(5);
  const got = await runLayer(w, (x, mw) => topKMoe(x, mw, { k: 1, capacityFactor: 1 }));
  let z = 0;
  for (let g = 0; g < Gn; g++) {
    for (let t = 0; t < n; t++) {
      let s = 0;
      for (let e = 0; e < E; e++) {
        let l = 0;
        for (let q = 0; q < d; q++) l += w.x[(g * n + t) * d + q]! * w.router[q * E + e]!;
        s += Math.exp(l);
      }
      z += Math.log(s) ** 2 / (Gn * n);
    }
  }
  assert.ok(Math.abs(got.z - z) < 1e-12 * z, `${got.z} vs ${z}`);
});

const layerInputs = (extra: Parameters<typeof gradCheck>[0]['inputs']) => [
  { name: 'x', shape: [Gn, n, d] },
  { name: 'router', shape: [d, E] },
  { name: 'wg', shape: [E, d, f] },
  { name: 'wu', shape: [E, d, f] },
  { name: 'wd', shape: [E, f, d] },
  ...extra,
];

test('top-k layer: gradients of x, router and expert weights match finite differences with the selection fixed (float64, with drops)', async () => {
  const k = 2;
  // Each token's two experts; expert 0 is wanted by 5 of group 0's tokens and has C = 2 slots, so 3 are dropped.
  const choices = [0, 1, 0, 2, 1, 0, 0, 2, 0, 1, 2, 1, /* group 1 */ 2, 1, 1, 0, 2, 0, 1, 2, 0, 1, 2, 0];
  const r = await gradCheck({
    dtype: 'float64',
    inputs: layerInputs([{ name: 'choices', shape: [Gn, n, k], dtype: 'int64', values: choices }]),
    build: (_g, [x, router, wg, wu, wd, c]) => topKMoe(x!, { router: router!, wg: wg!, wu: wu!, wd: wd! }, { k, capacityFactor: 0.5, choices: c! }).y,
  });
  assert.ok(r.checked === Gn * n * d + d * E + 3 * E * d * f);
  assert.ok(r.worst <= 1, r.detail);
});

test('expert-choice layer: gradients of x, router and expert weights match finite differences with the selection fixed (float64)', async () => {
  const C = 2;
  // Per group and expert, the C chosen tokens; token 5 of group 0 and tokens 0 and 3 of group 1 are chosen by none.
  const choices = [0, 1, 1, 2, 3, 4, /* group 1 */ 1, 2, 4, 5, 2, 5];
  const r = await gradCheck({
    dtype: 'float64',
    inputs: layerInputs([{ name: 'choices', shape: [Gn, E, C], dtype: 'int64', values: choices }]),
    build: (_g, [x, router, wg, wu, wd, c]) => expertChoiceMoe(x!, { router: router!, wg: wg!, wu: wu!, wd: wd! }, { capacityFactor: 1, choices: c! }).y,
  });
  assert.ok(r.worst <= 1, r.detail);
});

async function balanceOf(probs: number[], assign: number[], tokens: number) {
  const g = new G.Graph();
  const p = g.input('p', 'float64', [tokens, E]);
  const a = g.input('a', 'float64', [tokens, E]);
  const { loss, load } = loadBalancingLoss(p, a);
  const out = await runModel(G.exportModel(g, { outputs: { loss, load } }).bytes, { p: host([tokens, E], Float64Array.from(probs)), a: host([tokens, E], Float64Array.from(assign)) });
  return { loss: Number(out.loss!.data[0]), load: Array.from(out.load!.data as Float64Array) };
}

test('the load-balancing loss is E·Σ fᵢ·Pᵢ: 1 for uniform routing, E when everything goes to one expert, the formula otherwise', async () => {
  const tokens = 6;
  const oneHot = (e: number) => Array.from({ length: E }, (_, i) => (i === e ? 1 : 0));
  const uniform = await balanceOf(new Array(tokens * E).fill(1 / E), Array.from({ length: tokens }, (_, t) => oneHot(t % E)).flat(), tokens);
  assert.ok(Math.abs(uniform.loss - 1) < 1e-14, `uniform: ${uniform.loss}`);
  close(uniform.load, [1 / 3, 1 / 3, 1 / 3], 'uniform load');
  const collapsed = await balanceOf(Array.from({ length: tokens }, () => oneHot(1)).flat(), Array.from({ length: tokens }, () => oneHot(1)).flat(), tokens);
  assert.ok(Math.abs(collapsed.loss - E) < 1e-14, `collapsed: ${collapsed.loss}`);
  // Arbitrary: two assignments per token (top-2), probabilities not matching them.
  const r = rng(9);
  const probs: number[] = [];
  const assign: number[] = [];
  for (let t = 0; t < tokens; t++) {
    const raw = [r(), r(), r()].map((v) => v + 0.1);
    const z = raw.reduce((a, b) => a + b, 0);
    probs.push(...raw.map((v) => v / z));
    const skip = t % E;
    assign.push(...Array.from({ length: E }, (_, i) => (i === skip ? 0 : 1)));
  }
  const fI = Array.from({ length: E }, (_, i) => assign.filter((_, j) => j % E === i).reduce((a, b) => a + b, 0) / (2 * tokens));
  const pI = Array.from({ length: E }, (_, i) => probs.filter((_, j) => j % E === i).reduce((a, b) => a + b, 0) / tokens);
  const expected = E * fI.reduce((s, v, i) => s + v * pI[i]!, 0);
  const got = await balanceOf(probs, assign, tokens);
  assert.ok(Math.abs(got.loss - expected) < 1e-14, `${got.loss} vs ${expected}`);
});

test('the load-balancing loss: its gradient w.r.t. the router probabilities matches finite differences (assignments constant)', async () => {
  const r = await gradCheck({
    dtype: 'float64',
    inputs: [
      { name: 'p', shape: [4, E], positive: true },
      { name: 'a', shape: [4, E], dtype: 'float64', values: [1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1], grad: false },
    ],
    build: (_g, [p, a]) => loadBalancingLoss(p!, a!).loss,
  });
  assert.ok(r.worst <= 1, r.detail);
});

test('with the router choosing (no fixed selection), output + balance loss + z-loss have the gradients finite differences give (float64; no near-ties at this seed)', async () => {
  const objective = (out: TokenMoeOutput) => G.addN([G.reduceMean(G.mul(out.y, out.y)), G.mul(out.balance ?? out.zLoss, 0.3), G.mul(out.zLoss, 0.7)]);
  const inputs = layerInputs([]).map((i) => (i.name === 'router' ? { ...i, lo: 0.5, hi: 2 } : i));
  for (const [name, layer] of [
    ['top-2, capacity factor 0.5', (x: G.Tensor, mw: Parameters<typeof topKMoe>[1]) => topKMoe(x, mw, { k: 2, capacityFactor: 0.5 })],
    ['expert choice', (x: G.Tensor, mw: Parameters<typeof topKMoe>[1]) => expertChoiceMoe(x, mw, { capacityFactor: 1 })],
  ] as const) {
    const r = await gradCheck({
      dtype: 'float64',
      seed: 77,
      inputs,
      build: (_g, [x, router, wg, wu, wd]) => objective(layer(x!, { router: router!, wg: wg!, wu: wu!, wd: wd! })),
    });
    assert.ok(r.worst <= 1, `${name}: ${r.detail}`);
  }
});
