import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../runtime/index.js';
import * as G from '../graph/index.js';
import { modelConfigFromPipeline, resolveModelConfig } from './config.js';
import { countFlops, countParams } from './count.js';
import { buildLory } from './model.js';
import { paramSpecs } from './params.js';

const pipeline = (name: string) => {
  const file = join(PROJECT_ROOT, 'pipelines', `${name}.yaml`);
  return modelConfigFromPipeline(readFileSync(file, 'utf8'), file);
};

// Zhong et al. 2024, Table 4: total parameters, printed to 0.1B.
const PAPER: Array<[string, number]> = [
  ['paper-0.3b-8e', 1.8],
  ['paper-0.3b-16e', 3.5],
  ['paper-0.3b-32e', 6.8],
  ['paper-1.5b-8e', 7.8],
  ['paper-1.5b-16e', 15.0],
  ['paper-1.5b-32e', 29.5],
];

test("the paper pipelines' total parameters are the paper's figures at the precision it prints them (0.1B)", () => {
  for (const [name, billions] of PAPER) {
    const total = countParams(pipeline(name)).total;
    assert.equal(Math.round(total / 1e8) / 10, billions, `${name}: ${(total / 1e9).toFixed(3)}B`);
    assert.ok(Math.abs(total / 1e9 - billions) / billions < 0.016, `${name}: ${(total / 1e9).toFixed(3)}B is within 1.6% of ${billions}B`);
  }
});

test('the dense pipelines are the 0.3B and 1.5B base models: 0.31B non-embedding and 1.46B total parameters', () => {
  const small = countParams(pipeline('paper-0.3b-dense'));
  const large = countParams(pipeline('paper-1.5b-dense'));
  assert.equal(Math.round(small.nonEmbedding / 1e7) / 100, 0.31);
  assert.equal(Math.round(large.total / 1e7) / 100, 1.46);
  for (const e of ['8e', '16e', '32e']) {
    assert.equal(countParams(pipeline(`paper-0.3b-${e}`)).active, small.total + 24 * 1024 * Number.parseInt(e), 'active = dense + routers');
  }
});

test('the analytic count equals the parameters the graph declares (dense, MoE, and one-expert MoE)', () => {
  for (const [over, layout] of [[{}, undefined], [{ experts: 4 }, undefined], [{ experts: 1 }, 'moe']] as const) {
    const c = resolveModelConfig({ vocabSize: 50, dModel: 16, nLayers: 3, nHeads: 2, contextLength: 16, segmentLength: 4, ...over });
    const g = new G.Graph();
    buildLory(g, c, { batch: 1, seq: 8, ...(layout ? { layout } : {}) });
    const declared = g.params.reduce((s, p) => s + p.size, 0);
    assert.equal(declared, paramSpecs(c, layout).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0));
    if (!layout) assert.equal(countParams(c).total, declared, JSON.stringify(over));
  }
});

test('FLOPs per token: 6N-style training cost plus attention, with merging at E/T of the FFN', () => {
  const dense = pipeline('paper-0.3b-dense');
  const moe = pipeline('paper-0.3b-32e');
  const fd = countFlops(dense);
  const fm = countFlops(moe);
  assert.equal(fd.merging, 0);
  assert.equal(fm.ffn, fd.ffn, 'one merged expert costs one dense FFN');
  assert.equal(fm.merging / fm.ffn, 32 / 256, 'merging costs E/T of the FFN');
  const n = countParams(dense).nonEmbedding + dense.vocabSize * dense.dModel; // matmul weights a token meets
  assert.ok(Math.abs(fd.train - (6 * n + 12 * 24 * 1024 * 4096)) / fd.train < 0.001, "nanoGPT's 6N + 12·L·d·S");
  assert.equal(fd.train, 3 * fd.forward);
});

test('token-level kinds: same total as Lory; active = k experts (top-k) or capacity_factor experts (expert choice); FFN FLOPs follow the slots computed', () => {
  const lory = pipeline('paper-0.3b-8e');
  const L = lory.nLayers;
  const expert = 3 * lory.dModel * lory.dFf;
  const topK = { ...lory, moe: 'top_k' as const, topK: 2, capacityFactor: 1 };
  const ec = { ...lory, moe: 'expert_choice' as const, capacityFactor: 1 };
  const [pl, pt, pe] = [countParams(lory), countParams(topK), countParams(ec)];
  assert.equal(pt.total, pl.total);
  assert.equal(pe.total, pl.total);
  assert.equal(pe.active, pl.active, 'expert choice at capacity factor 1: one expert per token on average, as Lory');
  assert.equal(pt.active, pl.active + L * expert, 'top-2 meets one more expert per layer');
  assert.equal(countParams({ ...topK, topK: 1 }).active, pl.active, 'top-1 is the same active size');
  assert.equal(countParams({ ...ec, capacityFactor: 2 }).active, pl.active + L * expert);

  const [fl, ft, fe] = [countFlops(lory, 4096), countFlops(topK, 4096), countFlops(ec, 4096)];
  assert.equal(fe.ffn, fl.ffn, 'E·⌈S/E⌉/S = 1 slot per token when E divides S');
  assert.equal(ft.ffn, 2 * fl.ffn);
  assert.equal(ft.merging + fe.merging, 0);
  assert.equal(ft.router, 2 * lory.dModel * 8 * L, 'token-level routers run on every token');
  assert.equal(fl.router * 256, ft.router, 'Lory routes once per segment');
  // Capacity rounds up per sequence: S = 100 tokens, E = 8, cf 1 → C = 13 → 104 slots for 100 tokens.
  assert.equal(countFlops(ec, 100).expertSlotsPerToken, 1.04);
  assert.equal(countFlops({ ...topK, capacityFactor: 8 }, 100).expertSlotsPerToken, 8, 'capacity never exceeds the sequence');
});
