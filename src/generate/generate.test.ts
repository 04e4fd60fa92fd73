import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileForward, ResidentParams } from '../eval/forward.js';
import { tinyModel } from '../eval/testing.js';
import { initParams, type ModelConfig } from '../model/index.js';
import { randomTokens } from '../model/testing.js';
import { argmax } from './sampling.js';
import { generateTokens } from './generate.js';

const EOS = 0;
const greedy = { temperature: 0, topK: 0, topP: 1, seed: 1, stopAtEos: false };
const prompt = randomTokens(5, 257, 21); // with EOS: 6 positions, more than one segment of 4

test('cached greedy generation gives the same tokens as recomputing the whole context, for dense and Lory (prompt routing)', async () => {
  for (const c of [tinyModel({ experts: 1 }), tinyModel()]) {
    const p = initParams(c, 4);
    const cached = await generateTokens(c, p, prompt, EOS, { ...greedy, maxTokens: 10 });
    const full = await generateTokens(c, p, prompt, EOS, { ...greedy, maxTokens: 10, cache: false });
    assert.equal(cached.tokens.length, 10);
    assert.deepEqual(cached.tokens, full.tokens, `${c.experts} expert(s)`);
    // Sampling (same seed) follows the logits closely enough to catch any position or cache mistake.
    const sample = { temperature: 1, topK: 0, topP: 1, seed: 5, stopAtEos: false, maxTokens: 10 };
    const a = await generateTokens(c, p, prompt, EOS, sample);
    const b = await generateTokens(c, p, prompt, EOS, { ...sample, cache: false });
    assert.deepEqual(a.tokens, b.tokens);
    assert.ok(new Set(a.tokens).size > 3, `a varied continuation: ${a.tokens}`);
    assert.equal(cached.promptRouting.length, c.experts > 1 ? c.nLayers : 0);
  }
});

/** Greedy decoding by recomputing the model with causal segment routing over the padded context. */
async function segmentReference(c: ModelConfig, p: Record<string, Float32Array | Float64Array>, context: number[], n: number): Promise<number[]> {
  const params = new ResidentParams(c, p);
  const g = await compileForward(params, { batch: 1, seq: c.contextLength, routing: 'segment' });
  try {
    const seq = [...context];
    const out: number[] = [];
    while (out.length < n) {
      const ids = new Int32Array(c.contextLength).fill(EOS);
      ids.set(seq);
      const { logits } = await g.run(ids);
      const next = argmax(logits!, (seq.length - 1) * c.vocabSize, c.vocabSize);
      out.push(next);
      seq.push(next);
    }
    return out;
  } finally {
    g.dispose();
    params.dispose();
  }
}

test('segment routing while decoding re-routes at each segment boundary exactly as the training graph does', async () => {
  const c = tinyModel();
  const p = initParams(c, 6);
  const got = await generateTokens(c, p, prompt, EOS, { ...greedy, maxTokens: 10, routing: 'segment' });
  const want = await segmentReference(c, p, got.context, 10);
  assert.deepEqual(got.tokens, want);
  const promptRouted = await generateTokens(c, p, prompt, EOS, { ...greedy, maxTokens: 10 });
  assert.notDeepEqual(promptRouted.tokens, got.tokens, 'prompt routing is a different computation (else this test proves nothing)');
});

test('generation stops at EOS, at max tokens and at the end of the context; a prompt longer than the context is refused in one line', async () => {
  const c = tinyModel();
  const p = initParams(c, 4);
  const free = await generateTokens(c, p, prompt, EOS, { ...greedy, maxTokens: 100 });
  assert.equal(free.stoppedBy, 'context');
  assert.equal(free.context.length + free.tokens.length, c.contextLength + 1, 'the context fills, and the last position still predicts one token');
  // A zero final norm makes every logit 0: greedy takes the lowest id, EOS, and generation stops.
  const eosBias = { ...p, final_norm: new Float32Array(c.dModel) };
  const stopped = await generateTokens(c, eosBias, prompt, EOS, { ...greedy, stopAtEos: true, maxTokens: 5 });
  assert.deepEqual([stopped.tokens, stopped.stoppedBy], [[], 'eos']);
  const sampled = await generateTokens(c, p, prompt, EOS, { temperature: 1, topK: 20, topP: 0.9, seed: 3, maxTokens: 6 });
  const again = await generateTokens(c, p, prompt, EOS, { temperature: 1, topK: 20, topP: 0.9, seed: 3, maxTokens: 6 });
  assert.deepEqual(sampled.tokens, again.tokens, 'a seed reproduces a sampled continuation');
  await assert.rejects(
    generateTokens(c, p, randomTokens(c.contextLength, 257, 1), EOS, { ...greedy, maxTokens: 1 }),
    (e: Error) => e.name === 'InputError' && /prompt is 16 tokens; the model's context holds 16/.test(e.message) && !e.message.includes('\n'),
  );
});
