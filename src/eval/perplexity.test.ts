import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tempDir } from '../data/testing.js';
import { openTokenStore } from '../data/token-store.js';
import { modelRunner } from '../model/testing.js';
import type { ModelConfig } from '../model/index.js';
import { evalPerplexity, windowBatch } from './perplexity.js';
import { perplexityMarkdown } from './format.js';
import { byteTokenizer, heldOutStore, tinyCheckpoint, tinyModel, type Doc } from './testing.js';

// 15 UTF-8 bytes each (é and → are multi-byte): with EOS before and after, exactly one window of 16.
const DOCS: Doc[] = [
  { text: 'café au lait!!', domain: 'food', topic: 'x' },
  { text: 'the → arrow o', domain: 'math' },
  { text: 'soup of the day', domain: 'food' },
  { text: 'x squared is 4.', domain: 'math' },
];
const W = 16;

/** Σ NLL per document from the graph's own cross-entropy (not lory's evaluation code). */
async function independentNll(c: ModelConfig, params: Record<string, Float32Array | Float64Array>, store: string, routing: 'segment' | 'prompt'): Promise<number[]> {
  const s = openTokenStore(store);
  const full = await modelRunner(c, { batch: 1, seq: W, ...(routing === 'prompt' ? { routing: 'fixed' as const } : {}) });
  const prompt = routing === 'prompt' ? await modelRunner(c, { batch: 1, seq: c.segmentLength, routing: 'prompt', loss: false }) : undefined;
  try {
    const out: number[] = [];
    for (let d = 0; d < s.documentCount; d++) {
      const doc = [...s.documentTokens(d)];
      assert.equal(doc.length, W - 1, 'test documents fill one window exactly');
      const tokens = [0, ...doc];
      const targets = [...doc, 0];
      const r = prompt ? (await prompt.run(params, { tokens: tokens.slice(0, c.segmentLength) })).routing : undefined;
      const { loss } = await full.run(params, { tokens, targets, ...(r ? { routing: r } : {}) });
      out.push(loss * W);
    }
    return out;
  } finally {
    await full.dispose();
    await prompt?.dispose();
  }
}

test('perplexity is exp of the mean NLL computed independently from the model (dense, Lory segment and prompt routing); bits per byte matches a hand count', async () => {
  const tok = byteTokenizer(tempDir('tok'));
  const store = await heldOutStore(DOCS, tok);
  const bytes = DOCS.map((d) => Buffer.byteLength(d.text, 'utf8'));
  assert.deepEqual(bytes, [15, 15, 15, 15]);
  for (const c of [tinyModel({ experts: 1 }), tinyModel()]) {
    const ck = await tinyCheckpoint(c, tok, 3);
    const report = await evalPerplexity({ checkpoints: [ck.run], data: store });
    const modes = c.experts > 1 ? (['segment', 'prompt'] as const) : (['segment'] as const);
    assert.deepEqual(report.results.map((r) => r.routing), c.experts > 1 ? ['segment', 'prompt'] : ['dense']);
    for (const [k, mode] of modes.entries()) {
      const r = report.results[k]!;
      const nll = await independentNll(c, ck.params, store, mode);
      for (const [name, docs] of [['food', [0, 2]], ['math', [1, 3]]] as Array<[string, number[]]>) {
        const row = r.rows.find((x) => x.name === name)!;
        const sum = docs.reduce((a, d) => a + nll[d]!, 0);
        const tokens = docs.length * W; // 15 bytes + EOS per document
        assert.equal(row.documents, 2);
        assert.equal(row.tokens, tokens);
        assert.equal(row.bytes, 30);
        assert.ok(Math.abs(row.meanNll - sum / tokens) <= 1e-5 * sum / tokens, `${mode} ${name}: mean NLL ${row.meanNll} vs ${sum / tokens}`);
        assert.ok(Math.abs(row.perplexity - Math.exp(sum / tokens)) <= 1e-5 * row.perplexity);
        const bpb = sum / Math.LN2 / 30;
        assert.ok(Math.abs(row.bitsPerByte - bpb) <= 1e-5 * bpb, `${mode} ${name}: bits/byte ${row.bitsPerByte} vs hand count ${bpb}`);
      }
      const all = nll.reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(r.total.meanNll - all / (4 * W)) <= 1e-5 * r.total.meanNll, 'total is token-weighted');
      const macro = (r.rows[0]!.meanNll + r.rows[1]!.meanNll) / 2;
      assert.ok(Math.abs(r.macro.perplexity - Math.exp(macro)) <= 1e-9 * r.macro.perplexity, 'macro = exp(mean of row mean NLLs)');
      if (c.experts > 1) assert.equal(r.total.selfRoutedTokens, 4 * c.segmentLength, 'the first segment of each one-window document is counted as self-routed');
    }
    if (c.experts > 1) assert.notEqual(report.results[0]!.total.meanNll, report.results[1]!.total.meanNll, 'prompt routing is a different computation');
  }
});

test('long documents in strided windows: every token counted once, --by none gives one row, several checkpoints compare against the first', async () => {
  const tok = byteTokenizer(tempDir('tok'));
  const long = 'a longer document that spans several windows of sixteen tokens';
  const store = await heldOutStore([{ text: long, domain: 'prose' }, { text: 'short', domain: 'prose' }], tok);
  const c = tinyModel();
  const a = await tinyCheckpoint(c, tok, 1);
  const b = await tinyCheckpoint(c, tok, 2);
  const tokens = long.length + 1 + 'short'.length + 1;
  const wide = await evalPerplexity({ checkpoints: [a.dir, b.dir], data: store, by: null, routing: ['segment'] });
  const strided = await evalPerplexity({ checkpoints: [a.dir], data: store, by: null, routing: ['segment'], stride: 4 });
  assert.deepEqual(wide.results[0]!.rows.map((r) => [r.name, r.documents, r.tokens]), [['all', 2, tokens]]);
  assert.equal(strided.results[0]!.total.tokens, tokens);
  assert.equal(strided.results[0]!.stride, 4);
  assert.notEqual(strided.results[0]!.total.nll, wide.results[0]!.total.nll, 'more context changes the scores');
  const md = perplexityMarkdown(wide);
  assert.match(md, /side by side/);
  const rel = wide.results[1]!.total.perplexity / wide.results[0]!.total.perplexity - 1;
  assert.ok(md.includes(`${rel >= 0 ? '+' : '−'}${Math.abs(rel * 100).toFixed(1)}%`), 'relative change against the first checkpoint is printed');
});

/** −ln softmax(logits[at·V …])[target] in float64, written out here rather than taken from perplexity.ts. */
function logSoftmaxNll(logits: ArrayLike<number>, at: number, V: number, target: number): number {
  const row = Array.from({ length: V }, (_, v) => Number(logits[at * V + v]!));
  const max = Math.max(...row);
  return max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0)) - row[target]!;
}

/**
 * Σ NLL and self-routed count per document when prediction i of a document is scored in the first
 * window (of W inputs, ends k·s + W capped at the document's end, starts pulled back to hold W
 * inputs) that reaches past i — windows.ts's rule, restated per prediction — each window run through
 * the graph on its own (batch 1, EOS padding), its logits read at i's own position in the window.
 */
async function referenceNll(
  c: ModelConfig,
  params: Record<string, Float32Array | Float64Array>,
  store: string,
  o: { window: number; stride: number; routing: 'segment' | 'prompt' },
): Promise<{ nll: number[]; selfRouted: number[] }> {
  const { window: W, stride: s } = o;
  const P = c.segmentLength;
  const moe = c.experts > 1;
  const full = await modelRunner(c, { batch: 1, seq: W, ...(moe && o.routing === 'prompt' ? { routing: 'fixed' as const } : {}) });
  const prompt = moe && o.routing === 'prompt' ? await modelRunner(c, { batch: 1, seq: P, routing: 'prompt', loss: false }) : undefined;
  try {
    const st = openTokenStore(store);
    const nll: number[] = [];
    const selfRouted: number[] = [];
    for (let d = 0; d < st.documentCount; d++) {
      const doc = [...st.documentTokens(d)];
      const inputs = [0, ...doc];
      const targets = [...doc, 0];
      const M = inputs.length;
      const logitsAt = new Map<number, ArrayLike<number>>(); // window start → its logits
      let sum = 0;
      let self = 0;
      for (let i = 0; i < M; i++) {
        let k = 0;
        while (Math.min(k * s + W, M) <= i) k++;
        const start = Math.max(0, Math.min(k * s + W, M) - W);
        let logits = logitsAt.get(start);
        if (!logits) {
          const tokens = inputs.slice(start, start + W);
          while (tokens.length < W) tokens.push(0);
          const r = prompt ? (await prompt.run(params, { tokens: tokens.slice(0, P) })).routing : undefined;
          logits = (await full.run(params, { tokens, ...(r ? { routing: r } : {}) })).logits;
          logitsAt.set(start, logits);
        }
        sum += logSoftmaxNll(logits, i - start, c.vocabSize, targets[i]!);
        if (moe && i - start < P) self++;
      }
      nll.push(sum);
      selfRouted.push(self);
    }
    return { nll, selfRouted };
  } finally {
    await full.dispose();
    await prompt?.dispose();
  }
}

test('documents longer than a window: the NLL of each row equals per-window model runs, for stride = window, stride < window and a window shorter than the context, the last window pulled back', async () => {
  const tok = byteTokenizer(tempDir('tok'));
  // 40, 23 and 6 bytes: 41 predictions (the last window pulled back), 24 (two windows, the second
  // mostly context) and 7 (one padded window). One domain each, so each row is one document.
  const docs: Doc[] = [
    { text: 'forty bytes of text that span 3 windows.', domain: 'a' },
    { text: 'twenty-three bytes long', domain: 'b' },
    { text: 'tiny!!', domain: 'c' },
  ];
  assert.deepEqual(docs.map((d) => Buffer.byteLength(d.text)), [40, 23, 6]);
  const store = await heldOutStore(docs, tok);
  for (const c of [tinyModel({ experts: 1 }), tinyModel()]) {
    const ck = await tinyCheckpoint(c, tok, 4);
    for (const { window, stride } of [{ window: 16, stride: 16 }, { window: 16, stride: 5 }, { window: 8, stride: 3 }]) {
      const report = await evalPerplexity({ checkpoints: [ck.run], data: store, window, stride });
      assert.deepEqual(report.results.map((r) => r.routing), c.experts > 1 ? ['segment', 'prompt'] : ['dense']);
      for (const r of report.results) {
        const mode = r.routing === 'prompt' ? 'prompt' : 'segment';
        const ref = await referenceNll(c, ck.params, store, { window, stride, routing: mode });
        const what = `${r.routing}, window ${window}, stride ${stride}`;
        docs.forEach((doc, d) => {
          const row = r.rows.find((x) => x.name === doc.domain)!;
          assert.equal(row.tokens, Buffer.byteLength(doc.text) + 1, `${what}: every prediction of document ${d} scored once`);
          assert.ok(Math.abs(row.nll - ref.nll[d]!) <= 1e-5 * ref.nll[d]!, `${what}, document ${d}: NLL ${row.nll} vs per-window runs ${ref.nll[d]}`);
          assert.equal(row.selfRoutedTokens, ref.selfRouted[d], `${what}, document ${d}: self-routed predictions`);
        });
      }
    }
  }
});

test('refuses a store from another tokenizer, a missing metadata field, a bad stride and a damaged checkpoint, each with one line naming the input', async () => {
  const dir = tempDir('tok');
  const tok = byteTokenizer(dir);
  const other = byteTokenizer(tempDir('tok2'), '</s>');
  const c = tinyModel();
  const ck = await tinyCheckpoint(c, tok);
  const foreign = await heldOutStore(DOCS, other);
  const store = await heldOutStore(DOCS, tok);
  const oneLine = (re: RegExp) => (e: Error) => e.name === 'InputError' && re.test(e.message) && !e.message.includes('\n');
  await assert.rejects(evalPerplexity({ checkpoints: [ck.run], data: foreign }), oneLine(/another tokenizer/));
  await assert.rejects(evalPerplexity({ checkpoints: [ck.run], data: store, by: 'topic' }), oneLine(/line 2 has no 'topic' field/));
  await assert.rejects(evalPerplexity({ checkpoints: [ck.run], data: store, stride: 17 }), oneLine(/--stride 17/));
  await assert.rejects(evalPerplexity({ checkpoints: [ck.run], data: store, window: 6 }), oneLine(/multiple of the segment length/));
  const { truncateSync } = await import('node:fs');
  truncateSync(`${ck.dir}/model.safetensors`, 100);
  await assert.rejects(evalPerplexity({ checkpoints: [ck.run], data: store }), oneLine(/model\.safetensors/));
});

test('windows per run shrink so that one batch of logits stays within 512 MiB', () => {
  assert.equal(windowBatch(8, 256, tinyModel({ vocabSize: 2048 })), 8);
  assert.equal(windowBatch(8, 4096, tinyModel({ vocabSize: 32000, contextLength: 4096 })), 1, '4096 × 32000 floats is 500 MiB');
  assert.equal(windowBatch(8, 1024, tinyModel({ vocabSize: 32000, contextLength: 1024 })), 4);
});
