/**
 * The model's defining properties, on tiny float64 models: one expert is the dense model, causality
 * (and exactly where segment 1 departs from it), no router gradient through segment 1's weights,
 * finite differences over every parameter, prompt routing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveModelConfig, type ModelConfig } from './config.js';
import { PARAM, initParams, type ParamValues } from './params.js';
import { modelRunner, maxAbs, randomTokens, worstError, type RunResult } from './testing.js';

const B = 2;
const T = 4;
const S = 12; // three segments
const tiny = (over: Partial<ModelConfig> = {}) =>
  resolveModelConfig({ vocabSize: 16, dModel: 8, nLayers: 2, nHeads: 2, dFf: 12, contextLength: S, experts: 3, segmentLength: T, dtype: 'float64', initStd: 0.5, routerInitStd: 2, ...over });

const tokens = randomTokens(B * S, 16, 11);
const targets = randomTokens(B * S, 16, 12);
const V = 16;

/** logits[b, s, :] */
const row = (r: RunResult, b: number, s: number) => Array.from(r.logits.subarray((b * S + s) * V, (b * S + s + 1) * V));

function assertClose(label: string, a: ArrayLike<number>, b: ArrayLike<number>, rtol = 1e-12) {
  const scale = Math.max(maxAbs(b), 1e-300);
  const { worst, at } = worstError(a, b, 0, rtol * scale);
  assert.ok(worst <= 1, `${label}: element ${at}: ${a[at]} vs ${b[at]}`);
}

test('a Lory model with one expert equals the dense model with the same FFN weights (logits, loss and every gradient)', async () => {
  const c = tiny({ experts: 1 });
  const dense = await modelRunner(c, { batch: B, seq: S }, { grads: true });
  const moe = await modelRunner(c, { batch: B, seq: S, layout: 'moe' }, { grads: true });
  try {
    const pd = initParams(c, 3, 'dense');
    const pm: ParamValues = { ...pd };
    for (let l = 0; l < c.nLayers; l++) pm[PARAM.router(l)] = initParams(c, 4, 'moe')[PARAM.router(l)]!; // [d,1]: softmax ≡ 1
    const rd = await dense.run(pd, { tokens, targets });
    const rm = await moe.run(pm, { tokens, targets });
    assertClose('logits', rm.logits, rd.logits);
    assertClose('loss', [rm.loss], [rd.loss]);
    for (const name of dense.paramNames) assertClose(`gradient of ${name}`, rm.grads[name]!, rd.grads[name]!); // [1,d,f] and [d,f] share a layout
    for (let l = 0; l < c.nLayers; l++) assert.equal(maxAbs(rm.grads[PARAM.router(l)]!), 0, 'a one-expert router gets exactly zero gradient');
    assert.ok(rm.routing.every((w) => w.every((v) => v === 1)), 'the one expert has weight 1 in every segment');
  } finally {
    await dense.dispose();
    await moe.dispose();
  }
});

test('causality: changing segments k+1… leaves the logits of segments 1…k unchanged (in every sequence), and inside segments 2…N each position sees only tokens up to itself', async () => {
  const c = tiny();
  const r = await modelRunner(c, { batch: B, seq: S });
  try {
    const p = initParams(c, 5);
    const base = await r.run(p, { tokens });
    for (const k of [1, 2]) {
      const changed = [...tokens];
      for (let s = k * T; s < S; s++) changed[s] = (changed[s]! + 1 + s) % V; // sequence 0, segments k+1…
      const out = await r.run(p, { tokens: changed });
      for (let s = 0; s < k * T; s++) assert.deepEqual(row(out, 0, s), row(base, 0, s), `sequence 0 position ${s} (segment ${Math.floor(s / T) + 1}) must not see segment ${k + 1}`);
      for (let s = 0; s < S; s++) assert.deepEqual(row(out, 1, s), row(base, 1, s), `sequence 1 position ${s} must not see sequence 0`);
      assert.notDeepEqual(row(out, 0, k * T), row(base, 0, k * T), 'the changed positions themselves do change');
      // Segment k+2 is routed with weights from segment k+1, which changed.
      if (k + 1 < S / T) assert.notDeepEqual(out.routing[0]!.subarray((k + 1) * c.experts, (k + 2) * c.experts), base.routing[0]!.subarray((k + 1) * c.experts, (k + 2) * c.experts));
    }
    // Token by token inside segments 2…N: the last token of segment k is invisible to every earlier
    // position (segment k is routed with segment k−1's weights, not its own).
    for (let k = 2; k <= S / T; k++) {
      const changed = [...tokens];
      const last = k * T - 1;
      changed[last] = (changed[last]! + 7) % V;
      const out = await r.run(p, { tokens: changed });
      for (let s = 0; s < last; s++) assert.deepEqual(row(out, 0, s), row(base, 0, s), `position ${s} must not see position ${last} (segment ${k})`);
      assert.notDeepEqual(row(out, 0, last), row(base, 0, last));
    }
  } finally {
    await r.dispose();
  }
});

test('segment 1 is routed with its own mean: its earlier positions see its later tokens through the routing weights (with E>1 only)', async () => {
  // What holds for segment 1, exactly: logits at positions of segment 1 depend on every token of
  // segment 1 (the routing weights e_1 = softmax(R·mean(S_1)) summarise all of it), and on nothing
  // after it. With one expert the weights are constant and the model is causal token by token.
  for (const experts of [3, 1]) {
    const c = tiny({ experts });
    const r = await modelRunner(c, { batch: B, seq: S });
    try {
      const p = initParams(c, 6);
      const base = await r.run(p, { tokens });
      const changed = [...tokens];
      changed[T - 1] = (changed[T - 1]! + 5) % V; // last token of segment 1, sequence 0
      const out = await r.run(p, { tokens: changed });
      for (let s = 0; s < T - 1; s++) {
        if (experts > 1) assert.notDeepEqual(row(out, 0, s), row(base, 0, s), `position ${s} sees position ${T - 1} through segment 1's routing weights`);
        else assert.deepEqual(row(out, 0, s), row(base, 0, s), `dense: position ${s} does not see position ${T - 1}`);
      }
    } finally {
      await r.dispose();
    }
  }
});

test('the router receives no gradient through segment 1 routing weights (a single-segment batch gives the routers exactly zero gradient)', async () => {
  const c = tiny({ contextLength: T });
  const one = await modelRunner(c, { batch: B, seq: T }, { grads: true });
  const three = await modelRunner(tiny(), { batch: B, seq: S }, { grads: true });
  try {
    const p = initParams(c, 7);
    const r1 = await one.run(p, { tokens: tokens.slice(0, B * T), targets: targets.slice(0, B * T) });
    for (let l = 0; l < c.nLayers; l++) {
      assert.equal(maxAbs(r1.grads[PARAM.router(l)]!), 0, `layer ${l}: segment 1's weights are stop-gradient`);
      assert.ok(maxAbs(r1.grads[PARAM.ffn(l, 'w_gate')]!) > 0, `layer ${l}: the experts do learn`);
    }
    const r3 = await three.run(p, { tokens, targets });
    for (let l = 0; l < c.nLayers; l++) assert.ok(maxAbs(r3.grads[PARAM.router(l)]!) > 1e-6, `layer ${l}: segments 2… train the router`);
  } finally {
    await one.dispose();
    await three.dispose();
  }
});

test('finite differences agree with the analytic gradient of every parameter entry of a tiny Lory model (float64)', async () => {
  // The loss as a function of the parameters, with segment 1's routing weights held at their values
  // (that is what stop-gradient differentiates): fed as inputs to a second graph.
  const c = tiny();
  const own = await modelRunner(c, { batch: B, seq: S }, { grads: true });
  const held = await modelRunner(c, { batch: B, seq: S, firstSegment: 'input' }, { grads: true });
  const heldLoss = await modelRunner(c, { batch: B, seq: S, firstSegment: 'input' });
  try {
    const p = initParams(c, 8);
    const r = await own.run(p, { tokens, targets });
    const first = r.routing.map((w) => {
      const e = new Float64Array(B * c.experts);
      for (let b = 0; b < B; b++) e.set(w.subarray(b * (S / T) * c.experts, (b * (S / T) + 1) * c.experts), b * c.experts); // [B,N,E] → slot 0
      return e;
    });
    const batch = { tokens, targets, routing: first };
    const analytic = await held.run(p, batch);
    assertClose('loss with segment 1 weights held', [analytic.loss], [r.loss]);
    for (const name of own.paramNames) assertClose(`stop-gradient = constant segment-1 weights: ${name}`, analytic.grads[name]!, r.grads[name]!);

    const eps = 1e-6;
    let checked = 0;
    let worst = 0;
    let detail = '';
    for (const name of held.paramNames) {
      const x = p[name]!;
      const an = analytic.grads[name]!;
      for (let i = 0; i < x.length; i++) {
        const x0 = x[i]!;
        x[i] = x0 + eps;
        const lp = (await heldLoss.run(p, batch)).loss;
        x[i] = x0 - eps;
        const lm = (await heldLoss.run(p, batch)).loss;
        x[i] = x0;
        const numeric = (lp - lm) / (2 * eps);
        const err = Math.abs(an[i]! - numeric) / (1e-8 + 1e-5 * Math.abs(numeric));
        checked++;
        if (!(err <= worst)) {
          worst = err;
          detail = `${name}[${i}]: analytic ${an[i]} vs numeric ${numeric}`;
        }
      }
    }
    assert.ok(checked > 2000, `checked ${checked} entries`);
    if (process.env.LORY_TEST_VERBOSE) console.log(`finite differences: ${checked} entries, worst ${worst.toFixed(3)} at ${detail}`);
    assert.ok(worst <= 1, `worst |analytic − numeric| / (1e-8 + 1e-5·|numeric|) = ${worst.toFixed(2)} at ${detail}`);
  } finally {
    for (const r of [own, held, heldLoss]) await r.dispose();
  }
});

test('prompt routing: weights from the mean over the whole prompt; fixed routing with those weights reproduces its logits', async () => {
  const c = tiny();
  const prompt = await modelRunner(c, { batch: B, seq: S, routing: 'prompt', loss: false });
  const fixed = await modelRunner(c, { batch: B, seq: S, routing: 'fixed', loss: false });
  const segmentOne = await modelRunner(tiny({ contextLength: T }), { batch: B, seq: T });
  const promptOne = await modelRunner(tiny({ contextLength: T }), { batch: B, seq: T, routing: 'prompt', loss: false });
  try {
    const p = initParams(c, 9);
    const rp = await prompt.run(p, { tokens });
    assert.deepEqual(rp.routing.map((w) => w.length), [B * c.experts, B * c.experts], 'one decision per layer and sequence');
    const rf = await fixed.run(p, { tokens, routing: rp.routing });
    assertClose('fixed-routing logits', rf.logits, rp.logits);
    // A prompt of exactly one segment: prompt routing and causal segment routing coincide.
    const short = tokens.slice(0, B * T);
    const a = await segmentOne.run(p, { tokens: short });
    const b = await promptOne.run(p, { tokens: short });
    assertClose('one-segment logits', b.logits, a.logits);
  } finally {
    for (const r of [prompt, fixed, segmentOne, promptOne]) await r.dispose();
  }
});
