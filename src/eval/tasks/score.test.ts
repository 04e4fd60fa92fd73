import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../data/testing.js';
import { loadTokenizer } from '../../data/tokenizer.js';
import { Generator } from '../../generate/generate.js';
import type { ModelConfig, ParamArray, ParamValues } from '../../model/index.js';
import { modelRunner } from '../../model/testing.js';
import { ResidentParams } from '../forward.js';
import { byteTokenizer, tinyCheckpoint, tinyModel } from '../testing.js';
import { evalTasks } from './evaluate.js';
import { generateAnswers } from './generate-answers.js';
import { bestF1, choicePicks, cutAtStop, mean, tokenF1 } from './metrics.js';
import { planTask, prefixes, type AnswerPlan, type ChoicePlan } from './plan.js';
import { scoreSequences, type TaskRouting } from './score-choices.js';
import type { ChoiceTask } from './types.js';

const EOS = 0;

/** −ln softmax(logits[at·V …])[target] in float64, written out here rather than taken from lory's code. */
function nll(logits: ArrayLike<number>, at: number, V: number, target: number): number {
  const row = Array.from({ length: V }, (_, v) => Number(logits[at * V + v]!));
  const max = Math.max(...row);
  return max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0)) - row[target]!;
}

/**
 * Σ ln p of `continuation` after `context`, from the model's logits over the whole context length
 * (batch 1, EOS padding, no length buckets): [EOS, context, continuation] tokenized by the tokenizers
 * package directly, the oldest tokens dropped to fit, prompt routing decided on the kept context.
 */
async function referenceLogLik(c: ModelConfig, params: ParamValues, tokenizer: string, items: Array<{ context: string; continuation: string }>, routing: TaskRouting): Promise<number[]> {
  const tok = loadTokenizer(tokenizer).tokenizer;
  const C = c.contextLength;
  const prompt = routing === 'prompt';
  const full = await modelRunner(c, { batch: 1, seq: C, loss: false, ...(prompt ? { routing: 'fixed' as const } : {}) });
  try {
    const out: number[] = [];
    for (const { context, continuation } of items) {
      const ctx = [EOS, ...(await tok.encode(context, null, { addSpecialTokens: false })).getIds()];
      const cont = (await tok.encode(continuation, null, { addSpecialTokens: false })).getIds();
      const all = [...ctx, ...cont];
      const drop = Math.max(0, all.length - 1 - C);
      const inputs = all.slice(drop, all.length - 1);
      const kept = ctx.length - drop;
      const tokens = [...inputs, ...Array<number>(C - inputs.length).fill(EOS)];
      let r: ParamArray[] | undefined;
      if (prompt) {
        const router = await modelRunner(c, { batch: 1, seq: kept, routing: 'prompt', loss: false });
        r = (await router.run(params, { tokens: inputs.slice(0, kept) })).routing;
        await router.dispose();
      }
      const { logits } = await full.run(params, { tokens, ...(r ? { routing: r } : {}) });
      out.push(-cont.reduce((a, t, j) => a + nll(logits, kept - 1 + j, c.vocabSize, t), 0));
    }
    return out;
  } finally {
    await full.dispose();
  }
}

// Contexts of 2 to 40 bytes (the longest cut from the left to the 16-token window), multi-byte
// continuations, one item whose options differ in context (WinoGrande's partial scoring).
const TASK: ChoiceTask = {
  name: 'll',
  file: 'll.jsonl',
  layout: 'lory',
  kind: 'multiple_choice',
  items: [
    { line: 1, fewshot: false, options: [{ context: 'ab', continuation: ' cd' }, { context: 'ab', continuation: ' é→f' }], gold: 0 },
    { line: 2, fewshot: false, options: [{ context: 'The quick brown fox jumps over the', continuation: ' lazy dog' }, { context: 'The quick brown fox jumps over the', continuation: ' cat' }], gold: 1 },
    { line: 3, fewshot: false, options: [{ context: 'Ann ran', continuation: ' home.' }, { context: 'Bob ran', continuation: ' home.' }, { context: 'Cy ran', continuation: ' home.' }], gold: 2 },
    { line: 4, fewshot: false, options: [{ context: 'x=1;y=', continuation: '2' }, { context: 'x=1;y=', continuation: 'x+1' }], gold: 0 },
  ],
};

test('log-likelihoods equal Σ ln p over the continuation only, computed independently from the logits: dense, Lory segment and prompt routing, top-k; 0 and 1 shots; windows cut from the left', async () => {
  const tokPath = byteTokenizer(tempDir('tok'));
  const tok = loadTokenizer(tokPath);
  const models: Array<[ModelConfig, TaskRouting[]]> = [
    [tinyModel({ experts: 1 }), ['dense']],
    [tinyModel(), ['segment', 'prompt']],
    [tinyModel({ moe: 'top_k', topK: 2 }), ['token']],
  ];
  for (const shots of [0, 1]) {
    const plan = (await planTask(TASK, { shots, seed: 3 }, tok, 16)) as ChoicePlan;
    assert.equal(plan.seqs.length, 9);
    const pre = prefixes(TASK, plan.items, shots, 3);
    const prefixed = plan.items.flatMap((i, n) => TASK.items[i]!.options.map((o) => ({ context: pre[n]! + o.context, continuation: o.continuation })));
    assert.ok(plan.seqs.some((s) => s.dropped > 0), 'a window is cut from the left');
    for (const [c, routings] of models) {
      const params = (await tinyCheckpoint(c, tokPath, 2)).params;
      const resident = new ResidentParams(c, params);
      try {
        for (const routing of routings) {
          const got = await scoreSequences(resident, plan.seqs, { routing, batch: 4, pad: EOS });
          const want = await referenceLogLik(c, params, tokPath, prefixed, routing);
          want.forEach((w, i) => assert.ok(Math.abs(got.logLik[i]! - w) <= 1e-4 * Math.abs(w) + 1e-5, `${c.moe}/${c.experts} ${routing} ${shots}-shot, sequence ${i}: ${got.logLik[i]} vs ${w}`));
          assert.ok(got.logLik.every((x) => x < 0));
          if (routing === 'segment' && shots === 0) assert.ok(got.selfRouted.some((x) => x === 1), 'short contexts leave the continuation in the self-routed first segment');
          else if (routing === 'segment') assert.ok(plan.seqs.every((s, i) => got.selfRouted[i] === (s.contextLength < c.segmentLength ? 1 : 0)));
          else assert.ok(got.selfRouted.every((x) => x === 0));
        }
      } finally {
        resident.dispose();
      }
    }
  }
});

test('acc picks the highest total log-likelihood, acc_norm the highest per UTF-8 byte (checked by hand), ties the first option', () => {
  // ' ééé' is 4 characters and 7 bytes, ' abcde' 6 of each. Total: −6 < −5.5 → option 1. Per byte:
  // −6/7 = −0.857 > −5.5/6 = −0.917 → option 0 (per character it would be −1.5 < −0.917 → option 1).
  assert.deepEqual(choicePicks([-6, -5.5], [' ééé', ' abcde']), { pick: 1, pickNorm: 0 });
  assert.deepEqual(choicePicks([-2, -2], [' a', ' b']), { pick: 0, pickNorm: 0 });
  const m = mean([1, 0, 1, 1]);
  assert.equal(m.value, 0.75);
  assert.ok(Math.abs(m.stderr - Math.sqrt((0.75 * 0.25) / 3)) < 1e-12, 'sample sd / √n = √(p(1−p)/(n−1)) for 0/1 scores');
});

test('exact match and SQuAD token F1 of a generated answer cut at the stop string', () => {
  assert.equal(cutAtStop(' Paris\nQ: next', ['\n']), ' Paris');
  assert.equal(cutAtStop('4. Done', ['\n', '.']), '4');
  assert.equal(tokenF1('the cat sat', 'A cat sat down'), (2 * 1 * (2 / 3)) / (1 + 2 / 3)); // {cat, sat} vs {cat, sat, down}
  assert.equal(tokenF1('Cat!', 'cat'), 1);
  assert.equal(bestF1('blue', ['red', 'blue sky']), (2 * 1 * 0.5) / 1.5);
});

test('evalTasks: acc and acc_norm follow the independent log-likelihoods with hand-counted UTF-8 bytes, for both routings', async () => {
  const dir = tempDir('tasks');
  const tokPath = byteTokenizer(dir);
  const c = tinyModel();
  const ck = await tinyCheckpoint(c, tokPath, 5);
  const items = [
    { context: 'ab', choices: [' cd', ' é→f', ' ghi'], gold: 1, bytes: [3, 6, 4] },
    { context: 'x=1;y=', choices: ['2', 'x+1'], gold: 0, bytes: [1, 3] },
    { context: 'Sé', choices: [' ééé', ' abcde'], gold: 0, bytes: [7, 6] },
    { context: 'Q', choices: [' ab', ' éé', ' c'], gold: 2, bytes: [3, 5, 2] },
  ];
  writeFileSync(join(dir, 'mc.jsonl'), items.map(({ bytes: _b, ...i }) => JSON.stringify(i)).join('\n'));
  const report = await evalTasks({ checkpoints: [ck.run], tasks: [join(dir, 'mc.jsonl')] });
  assert.deepEqual(report.results.map((r) => r.routing), ['segment', 'prompt']);
  for (const r of report.results) {
    const mc = r.scores[0]!;
    const acc: number[] = [];
    const accNorm: number[] = [];
    for (const it of items) {
      const ll = await referenceLogLik(c, ck.params, tokPath, it.choices.map((ch) => ({ context: it.context, continuation: ch })), r.routing);
      const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));
      acc.push(argmax(ll) === it.gold ? 1 : 0);
      accNorm.push(argmax(ll.map((x, i) => x / it.bytes[i]!)) === it.gold ? 1 : 0);
    }
    assert.deepEqual([mc.acc!.value, mc.accNorm!.value], [mean(acc).value, mean(accNorm).value], `${r.routing}: acc, acc_norm`);
    assert.equal(mc.acc!.n, 4);
    assert.deepEqual([mc.summaryMetric, mc.summary], ['acc_norm', mc.accNorm]);
  }
});

test('generated answers (key/value cache, contexts cut from the left) equal greedy decoding that recomputes the whole context, cut at the stop string', async () => {
  const tokPath = byteTokenizer(tempDir('tok'));
  const tok = loadTokenizer(tokPath);
  const task = {
    name: 'g',
    file: 'g.jsonl',
    layout: 'lory' as const,
    kind: 'generative' as const,
    items: [
      { line: 1, fewshot: false, context: 'Q: 1', answers: [' x'], stop: ['\n'] },
      { line: 2, fewshot: false, context: 'a long question that fills the window', answers: [' y'], stop: ['\u0001'] },
    ],
  };
  const plan = (await planTask(task, { shots: 0, seed: 0 }, tok, 16)) as AnswerPlan;
  for (const c of [tinyModel({ experts: 1 }), tinyModel()]) {
    const ck = await tinyCheckpoint(c, tokPath, 7);
    const cached = await Generator.open(c, ck.params, EOS);
    const full = await Generator.open(c, ck.params, EOS, { cache: false });
    try {
      const got = await generateAnswers(cached, plan, tok, { maxNewTokens: 6 });
      assert.deepEqual(got.map((a) => a.dropped), [0, 1 + task.items[1]!.context.length - 10], 'the long context keeps its last 16 − 6 tokens');
      for (const [n, a] of got.entries()) {
        const context = plan.contexts[n]!.slice(a.dropped);
        const want = await full.generate(context, EOS, { temperature: 0, topK: 0, topP: 1, seed: 0, maxTokens: 6 });
        const text = cutAtStop(await tok.tokenizer.decode(want.tokens, false), task.items[n]!.stop);
        assert.equal(a.text, text, `${c.experts} expert(s), item ${n}`);
      }
      if (c.experts > 1) {
        // Segment routing: one decoder reused item after item gives what a fresh decoder per item gives.
        const reused = await Generator.open(c, ck.params, EOS, { routing: 'segment' });
        try {
          const again = await generateAnswers(reused, plan, tok, { maxNewTokens: 6 });
          for (const [n, a] of again.entries()) {
            const fresh = await Generator.open(c, ck.params, EOS, { routing: 'segment' });
            const want = await fresh.generate(plan.contexts[n]!.slice(a.dropped), EOS, { temperature: 0, topK: 0, topP: 1, seed: 0, maxTokens: 6 });
            fresh.dispose();
            assert.equal(a.text, cutAtStop(await tok.tokenizer.decode(want.tokens, false), task.items[n]!.stop), `segment routing, item ${n}`);
          }
        } finally {
          reused.dispose();
        }
      }
    } finally {
      cached.dispose();
      full.dispose();
    }
  }
  // Token-level routing decodes without the cache: the same tokens as an argmax loop over the training graph.
  const c = tinyModel({ moe: 'top_k', topK: 2 });
  const ck = await tinyCheckpoint(c, tokPath, 8);
  const gen = await Generator.open(c, ck.params, EOS, { cache: false });
  const graph = await modelRunner(c, { batch: 1, seq: c.contextLength, loss: false });
  try {
    const got = await generateAnswers(gen, plan, tok, { maxNewTokens: 6 });
    for (const [n, a] of got.entries()) {
      const seq = plan.contexts[n]!.slice(a.dropped);
      const out: number[] = [];
      for (let i = 0; i < 6; i++) {
        const { logits } = await graph.run(ck.params, { tokens: [...seq, ...Array<number>(c.contextLength - seq.length).fill(EOS)] });
        const row = Array.from(logits.subarray((seq.length - 1) * c.vocabSize, seq.length * c.vocabSize));
        const next = row.indexOf(Math.max(...row));
        if (next === EOS) break;
        out.push(next);
        seq.push(next);
      }
      assert.equal(a.text, cutAtStop(await tok.tokenizer.decode(out, false), task.items[n]!.stop), `top-k, item ${n}`);
    }
  } finally {
    gen.dispose();
    await graph.dispose();
  }
});
