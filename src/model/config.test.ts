import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MODEL_CONFIG, checkSequenceLength, defaultDff, fusedOpAvailable, modelConfigFromPipeline, modelConfigToYamlObject, parseModelConfig, resolveModelConfig } from './config.js';

test('the defaults are the paper 0.3B dense base model, with d_ff = 8d/3 rounded up to a multiple of 256', () => {
  const c = resolveModelConfig();
  assert.deepEqual(c, { ...DEFAULT_MODEL_CONFIG });
  assert.equal(c.dModel, 1024);
  assert.equal(c.nLayers, 24);
  assert.equal(c.nHeads, 16);
  assert.equal(c.vocabSize, 32000);
  assert.equal(c.dFf, 2816);
  assert.equal(c.experts, 1);
  assert.equal(c.segmentLength, 256);
  assert.equal(defaultDff(1536), 4096);
  assert.equal(defaultDff(4096), 11008, "LLaMA-7B's FFN width");
  assert.equal(resolveModelConfig({ dModel: 96, nHeads: 4, ffnMultipleOf: 32 }).dFf, 256);
});

test('a pipeline YAML yields the model section, tolerating the other sections', () => {
  const yaml = `
data:
  corpus: ../shared/corpus/mini
train:
  lr: 2.0e-4
  steps: 100
model:
  d_model: 64
  n_layers: 2
  n_heads: 4
  experts: 4
  segment_length: 32
  context_length: 128
  norm_eps: 1e-6
eval: { domains: [books] }
`;
  const c = modelConfigFromPipeline(yaml, 'tiny.yaml');
  assert.equal(c.dModel, 64);
  assert.equal(c.experts, 4);
  assert.equal(c.normEps, 1e-6);
  assert.equal(c.dFf, 256, 'derived from d_model');
  assert.throws(() => modelConfigFromPipeline('train: {steps: 1}\n'), { name: 'ConfigError', message: /no model: section/ }, 'no model section is an error, not the defaults');
  assert.deepEqual(parseModelConfig(modelConfigToYamlObject(c)), c, 'the YAML spelling round-trips');
});

test('impossible configs are ConfigErrors that name the YAML field', () => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ d_model: 1000, n_heads: 16 }, /model\.d_model \(1000\) must be divisible by model\.n_heads \(16\)/],
    [{ d_model: 48, n_heads: 16 }, /head dimension must be even/],
    [{ n_layers: 0 }, /model\.n_layers: must be a positive integer, got 0/],
    [{ d_ff: 10.5 }, /model\.d_ff: must be a positive integer/],
    [{ vocab_size: '32k' }, /model\.vocab_size: must be a positive integer, got "32k"/],
    [{ experts: 8, context_length: 1000, segment_length: 256 }, /model\.context_length \(1000\) must be a multiple of model\.segment_length \(256\)/],
    [{ experts: 8, context_length: 128, segment_length: 256 }, /segment_length \(256\) is longer than model\.context_length/],
    [{ router_init_std: 0 }, /model\.router_init_std: must be a positive number.*same gradient/],
    [{ ffn_impl: 'fused' }, /model\.ffn_impl: must be 'auto', 'standard' or 'custom'/],
    [{ dtype: 'float16' }, /model\.dtype: must be 'float32' or 'float64'/],
    [{ experts: 2, ffn_impl: 'custom', dtype: 'float64' }, /'custom' runs in float32 only/],
    [{ d_modle: 64 }, /model\.d_modle: unknown field; did you mean 'd_model'\?/],
    [{ watermelon: 1 }, /model\.watermelon: unknown field; known fields: vocab_size, d_model/],
  ];
  for (const [raw, message] of bad) assert.throws(() => parseModelConfig(raw, 'p.yaml'), { name: 'ConfigError', message }, JSON.stringify(raw));
  assert.throws(() => parseModelConfig({ n_layers: -1 }, 'p.yaml'), { message: /^p\.yaml: model\.n_layers/ }, 'the source prefixes the message');
  assert.throws(() => modelConfigFromPipeline('model: [1, 2]'), { name: 'ConfigError', message: /model: must be a mapping/ });
  assert.throws(() => modelConfigFromPipeline('model:\n  d_model: [', 'x.yaml'), { name: 'ConfigError', message: /^x\.yaml: not valid YAML/ });
});

test('a sequence length must fit the context and, for MoE, be a whole number of segments (dense needs no segments)', () => {
  const moe = resolveModelConfig({ experts: 8 });
  assert.doesNotThrow(() => checkSequenceLength(moe, 4096));
  assert.doesNotThrow(() => checkSequenceLength(moe, 512));
  assert.throws(() => checkSequenceLength(moe, 1000), { name: 'ConfigError', message: /sequence length 1000 is not a multiple of model\.segment_length \(256\)/ });
  assert.throws(() => checkSequenceLength(moe, 8192), { name: 'ConfigError', message: /exceeds model\.context_length \(4096\)/ });
  assert.doesNotThrow(() => checkSequenceLength(resolveModelConfig(), 1000));
});

test("ffn_impl defaults to 'auto': the fused op for float32 MoE models where its library is built, else the standard layer", () => {
  const moe = { vocabSize: 16, dModel: 8, nLayers: 1, nHeads: 2, contextLength: 8, experts: 2, segmentLength: 4 };
  assert.equal(resolveModelConfig(moe).ffnImpl, fusedOpAvailable() ? 'custom' : 'standard');
  assert.equal(resolveModelConfig({ ...moe, dtype: 'float64' }).ffnImpl, 'standard', 'the fused op is float32-only');
  assert.equal(resolveModelConfig({ ...moe, experts: 1 }).ffnImpl, 'standard', 'dense models have no merged experts');
  assert.equal(resolveModelConfig({ ...moe, ffnImpl: 'standard' }).ffnImpl, 'standard', 'an explicit choice wins');
  assert.equal(parseModelConfig({ experts: 2, context_length: 8, segment_length: 4, ffn_impl: 'auto' }).ffnImpl, fusedOpAvailable() ? 'custom' : 'standard');
});

test('model.moe picks the routing (lory by default); the token-level kinds have their own fields, each error naming it', () => {
  const c = resolveModelConfig();
  assert.equal(c.moe, 'lory');
  assert.deepEqual([c.topK, c.capacityFactor, c.auxLossWeight, c.routerZLossWeight, c.expertChoiceGroup], [2, 1, 0.01, 0, 'sequence']);
  const topK = parseModelConfig({ experts: 8, moe: 'top_k', top_k: 1, capacity_factor: 1.25, aux_loss_weight: 0.02, router_z_loss_weight: 0.001 });
  assert.deepEqual([topK.moe, topK.topK, topK.capacityFactor, topK.auxLossWeight, topK.routerZLossWeight], ['top_k', 1, 1.25, 0.02, 0.001]);
  assert.equal(parseModelConfig({ experts: 8, moe: 'expert_choice', expert_choice_group: 'position' }).expertChoiceGroup, 'position');
  assert.equal(parseModelConfig({ experts: 2, moe: 'top_k', dtype: 'float32' }).ffnImpl, 'standard', "'auto' never picks Lory's merged-expert op for token-level routing");
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ moe: 'switch' }, /model\.moe: must be one of lory, expert_choice, top_k, got "switch"/],
    [{ experts: 4, moe: 'top_k', top_k: 5 }, /model\.top_k \(5\) must be at most model\.experts \(4\)/],
    [{ top_k: 0 }, /model\.top_k: must be a positive integer, got 0/],
    [{ capacity_factor: 0 }, /model\.capacity_factor: must be a positive number, got 0/],
    [{ aux_loss_weight: -0.1 }, /model\.aux_loss_weight: must be a number ≥ 0, got -0\.1/],
    [{ router_z_loss_weight: 'x' }, /model\.router_z_loss_weight: must be a number ≥ 0, got "x"/],
    [{ expert_choice_group: 'batch' }, /model\.expert_choice_group: must be one of sequence, position, got "batch"/],
    [{ experts: 4, moe: 'expert_choice', ffn_impl: 'custom' }, /model\.ffn_impl: 'custom' is Lory's merged-expert op; model\.moe expert_choice runs its experts with standard ops/],
    [{ capacity_facter: 1 }, /did you mean 'capacity_factor'\?/],
  ];
  for (const [raw, message] of bad) assert.throws(() => parseModelConfig(raw, 'p.yaml'), { name: 'ConfigError', message }, JSON.stringify(raw));
  // Token-level routing has no segments: any sequence length up to the context fits.
  const tok = resolveModelConfig({ experts: 8, moe: 'top_k', contextLength: 1000 });
  assert.doesNotThrow(() => checkSequenceLength(tok, 999));
  assert.equal(parseModelConfig({ experts: 1, moe: 'top_k', top_k: 2 }).topK, 2, 'one expert is the dense model: top_k is not checked against it');
});
