import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { countParams, resolveModelConfig } from '../model/index.js';
import { describeMemory, estimateTrainingMemory, gigabytes, largestShard } from './memory.js';

describe('the training memory estimate', () => {
  it('adds up the parts for a dense model, worked by hand', () => {
    // V 1000, d 64, 2 layers, 4 heads, f 256, no experts: P = 2·1000·64 + 64 + 2·(4·64² + 2·64 + 3·64·256) = 259,392.
    const model = resolveModelConfig({ vocabSize: 1000, dModel: 64, nLayers: 2, nHeads: 4, dFf: 256, contextLength: 128 });
    assert.equal(countParams(model).total, 259_392);
    const m = estimateTrainingMemory(model, { microBatch: 2, seq: 128, accumulation: 1 });
    const P = 259_392;
    assert.equal(m.weights, 2 * P * 4);
    assert.equal(m.optimizer, 4 * P * 4);
    assert.equal(m.gradients, P * 4);
    assert.equal(m.checkpointCopy, 3 * P * 4);
    // N = 256 tokens. Per layer: attention 256·10·64 + 2·2·4·128² = 163,840 + 262,144; FFN 256·(3·64 + 4·256) = 311,296.
    // 3 layers' worth (2 + the backward's working set) + the head 256·(3·64 + 3·1000) = 817,152; × 4 bytes × 1.5.
    const perLayer = 163_840 + 262_144 + 311_296;
    assert.equal(m.activations, 1.5 * 4 * (3 * perLayer + 817_152));
    assert.equal(m.total, m.weights + m.optimizer + m.gradients + m.activations + m.checkpointCopy + 300e6);
  });

  it('counts accumulators with accumulation, Lory\'s saved a·b with the fused op, and the merged weights with standard ops', () => {
    const base = { vocabSize: 1000, dModel: 64, nLayers: 2, nHeads: 4, dFf: 256, contextLength: 128, segmentLength: 32, experts: 4 };
    const fused = estimateTrainingMemory(resolveModelConfig({ ...base, ffnImpl: 'custom' }), { microBatch: 2, seq: 128, accumulation: 1 });
    const standard = estimateTrainingMemory(resolveModelConfig({ ...base, ffnImpl: 'standard' }), { microBatch: 2, seq: 128, accumulation: 4 });
    const P = countParams(resolveModelConfig(base)).total;
    assert.equal(standard.gradients, 3 * P * 4);
    // Per layer the FFN differs by 256·(4f − 2f − d) tokens·elements, plus 8 segments × 3·d·f merged weights.
    const perLayer = 256 * (4 * 256 - 2 * 256 - 64) + 8 * 3 * 64 * 256;
    assert.equal(standard.activations - fused.activations, 1.5 * 4 * 3 * perLayer);
  });

  it('per rank: accumulators always, and sharded AdamW state = the busiest rank of the shard plan, worked by hand', () => {
    // The dense model above: tensors tok_emb and lm_head 64,000 each, per layer wq/wk/wv/wo 4,096, w_gate/w_up/w_down 16,384, 2 norms 64; final norm 64.
    const model = resolveModelConfig({ vocabSize: 1000, dModel: 64, nLayers: 2, nHeads: 4, dFf: 256, contextLength: 128 });
    const P = 259_392;
    const one = estimateTrainingMemory(model, { microBatch: 2, seq: 128, accumulation: 1, ranks: 2 });
    assert.equal(one.gradients, 3 * P * 4, 'a rank of a data-parallel run accumulates');
    assert.equal(one.optimizer, 4 * P * 4);
    // Largest first to the emptier rank: 64,000 | 64,000, then six 16,384 alternate (98 k each), then
    // eight 4,096 alternate, then the 64-element norms: the two loads differ by at most one norm.
    const shard = largestShard(model, 2);
    assert.ok(shard >= P / 2 && shard <= P / 2 + 64, `busiest rank ${shard} of ${P}`);
    const sharded = estimateTrainingMemory(model, { microBatch: 2, seq: 128, accumulation: 1, ranks: 2, shardOptimizer: true });
    assert.equal(sharded.optimizer, 4 * shard * 4);
    assert.equal(sharded.total, one.total - one.optimizer + sharded.optimizer);
  });

  it('with recompute counts each layer\'s input and two layers\' activations, worked by hand', () => {
    // The dense model above with 8 layers: the same 737,280 elements per layer at N = 256 tokens.
    const model = resolveModelConfig({ vocabSize: 1000, dModel: 64, nLayers: 8, nHeads: 4, dFf: 256, contextLength: 128 });
    const plain = estimateTrainingMemory(model, { microBatch: 2, seq: 128, accumulation: 1 });
    const re = estimateTrainingMemory(model, { microBatch: 2, seq: 128, accumulation: 1, recompute: true });
    const perLayer = 163_840 + 262_144 + 311_296;
    const head = 817_152;
    assert.equal(plain.activations, 1.5 * 4 * (9 * perLayer + head));
    // 8 layer inputs of 256·64 + the layer being recomputed + the backward's working set + the head.
    assert.equal(re.activations, 1.5 * 4 * (8 * 256 * 64 + 2 * perLayer + head));
    assert.equal(re.total, plain.total - plain.activations + re.activations, 'only the activations change');
    assert.equal(re.recompute, true);
    assert.match(describeMemory(re), /activations [\d.]+ GB at micro-batch 2 × 128 tokens \(layers recomputed\)$/);
    assert.doesNotMatch(describeMemory(plain), /recomputed/);
  });

  it('prints sizes readably', () => {
    assert.equal(gigabytes(5.27e8), '0.53 GB');
    assert.equal(gigabytes(5.4e9), '5.40 GB');
    assert.equal(gigabytes(2.73e11), '273 GB');
    assert.equal(gigabytes(1.38e12), '1.38 TB');
    assert.equal(gigabytes(4.864e15), '4,864 TB');
  });
});
