import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBatches } from '../../batching/build-batches.js';
import { prepare } from '../../data/prepare.js';
import { tempDir, writeJsonl } from '../../data/testing.js';
import { mulberry32 } from '../../random/index.js';
import { train } from '../../train/loop.js';
import { tinyTrain } from '../../train/testing.js';
import { byteTokenizer, tinyModel } from '../testing.js';
import { evalTasks } from './evaluate.js';

// Four memorised sequences, one per key: the model sees only these documents.
const CODES: Record<string, string> = { 'a:': ' qmzvxk', 'b:': ' wplrtn', 'c:': ' hjdgsf', 'd:': ' yubcoe' };
const KEYS = Object.keys(CODES);

/** Trains a tiny byte-level model on the memorised documents; returns its run directory. */
async function memorised(dir: string, tokenizer: string, experts: number): Promise<string> {
  const docs = Array.from({ length: 64 }, () => KEYS.map((k) => ({ text: k + CODES[k] }))).flat();
  await prepare({ inputs: [writeJsonl(join(dir, `docs-${experts}.jsonl`), docs)], out: join(dir, `tokens-${experts}`), tokenizer });
  await buildBatches({ tokens: join(dir, `tokens-${experts}`), out: join(dir, `batches-${experts}`), strategy: 'random', seqLen: 16, validFraction: 0.05, dedup: false });
  const r = await train({
    batches: join(dir, `batches-${experts}`),
    out: join(dir, `run-${experts}`),
    model: tinyModel({ experts, dModel: 32, dFf: 64 }),
    train: tinyTrain({ steps: 200, lr: 1e-2, micro_batch: 8, dense_warmup: experts > 1 ? 0.2 : 0 }),
    config: { test: true },
    peakFlops: 1e10,
  });
  return r.runDir;
}

test('a model trained on memorised sequences picks them among random ones (acc 1.0, answers by exact match); a shuffled-label control scores chance within its standard error', async () => {
  const dir = tempDir('memorised');
  const tok = byteTokenizer(dir);
  const runs = [await memorised(dir, tok, 1), await memorised(dir, tok, 3)];
  const rand = mulberry32(11);
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const word = () => ` ${Array.from({ length: 6 }, () => letters[Math.floor(rand() * 26)]).join('')}`;
  const items = Array.from({ length: 80 }, (_, i) => {
    const key = KEYS[i % 4]!;
    const gold = Math.floor(rand() * 4);
    const choices = [word(), word(), word()];
    choices.splice(gold, 0, CODES[key]!);
    return { context: key, choices, gold };
  });
  writeJsonl(join(dir, 'memorised.jsonl'), items);
  // The control: the same items, each gold label redrawn at random (independent of where the memorised sequence is).
  writeJsonl(join(dir, 'shuffled.jsonl'), items.map((it) => ({ ...it, gold: Math.floor(rand() * 4) })));
  writeFileSync(
    join(dir, 'recall.jsonl'),
    [...KEYS.map((k) => ({ context: k, answers: [CODES[k]] })), { context: 'a:', answers: [' qm'], stop: ['z'] }].map((r) => JSON.stringify(r)).join('\n'),
  );
  const report = await evalTasks({ checkpoints: runs, tasks: ['memorised', 'shuffled', 'recall'].map((n) => join(dir, `${n}.jsonl`)), maxNewTokens: 8 });
  assert.deepEqual(report.results.map((r) => r.routing), ['dense', 'segment', 'prompt']);
  for (const r of report.results) {
    const [mem, shuffled, recall] = r.scores;
    assert.deepEqual([mem!.acc!.value, mem!.accNorm!.value, mem!.items], [1, 1, 80], `${r.routing}: the memorised choice every time`);
    const control = shuffled!.acc!;
    assert.ok(Math.abs(control.value - 0.25) <= 2 * control.stderr, `${r.routing}: control acc ${control.value} ± ${control.stderr} vs chance 0.25`);
    assert.ok(control.stderr > 0.04 && control.stderr < 0.06, `standard error √(p(1−p)/(n−1)) ≈ 0.05 at n = 80: ${control.stderr}`);
    assert.deepEqual([recall!.exactMatch!.value, recall!.f1!.value], [1, 1], `${r.routing}: every answer recalled exactly`);
    assert.deepEqual(recall!.stoppedBy, { eos: 4, stop: 1 }, 'the documents end in EOS; the last item stops at its stop string');
  }
});
