import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../artifacts/index.js';
import { parsePipeline } from './load.js';
import { planStages } from './stages.js';

const GOOD = `
out: work/t
data: { train: fixtures/corpus/train.jsonl }
model: { vocab_size: 512, d_model: 64, n_layers: 2, n_heads: 4, context_length: 128, segment_length: 32 }
batches: { seq_len: 128 }
`;

const refuse = (text: string, message: RegExp | string, checkFiles = false) =>
  assert.throws(
    () => parsePipeline(text, 'p.yaml', { checkFiles }),
    (e: Error) => {
      assert.equal(e.name, 'InputError');
      if (typeof message === 'string') assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
  );

describe('pipeline files', () => {
  it('fills defaults and resolves one run from model: and train:', () => {
    const p = parsePipeline(GOOD, 'p.yaml');
    assert.equal(p.runs.length, 1);
    assert.equal(p.runs[0]!.name, 'model');
    assert.equal(p.runs[0]!.model.dFf, 256, 'd_ff from d_model, as resolveModelConfig does');
    assert.equal(p.runs[0]!.train.beta2, 0.95);
    assert.equal(p.runs[0]!.train.steps, 200);
    assert.deepEqual(p.pipeline.batches.strategies, ['similarity']);
  });

  it('merges each runs entry over the top-level model and train sections', () => {
    const p = parsePipeline(`${GOOD}\ntrain: { lr: 1.0e-3, steps: 7 }\nruns:\n  - { name: a, model: { experts: 1 } }\n  - { name: b, model: { experts: 4 }, train: { lr: 2.0e-3 } }\n`, 'p.yaml');
    assert.deepEqual(
      p.runs.map((r) => [r.name, r.model.experts, r.train.lr, r.train.steps, r.model.dModel]),
      [
        ['a', 1, 1e-3, 7, 64],
        ['b', 4, 2e-3, 7, 64],
      ],
    );
  });

  it('the demo pipeline is valid and plans prepare → embed → batches → train → eval → tasks → inspect', () => {
    const file = join(PROJECT_ROOT, 'pipelines', 'demo.yaml');
    const p = parsePipeline(readFileSync(file, 'utf8'), file);
    assert.deepEqual(
      planStages(p).map((s) => s.name),
      ['prepare', 'prepare-heldout', 'embed', 'batches-similarity', 'batches-random', 'train-dense', 'train-lory', 'eval-perplexity', 'make-tasks', 'eval-tasks', 'inspect-lory'],
    );
    assert.deepEqual(planStages(p, { from: 'batches', until: 'train-dense' }).map((s) => s.name), ['batches-similarity', 'batches-random', 'train-dense']);
    assert.throws(() => planStages(p, { from: 'trian' }), { message: /no stage 'trian' in this pipeline; its stages: prepare, / });
  });

  // A dozen bad pipelines, each with the message a user sees.
  it('refuses a wrong type, naming the field path and what was expected', () => refuse(`${GOOD}\ntrain: { lr: fast }`, 'p.yaml: train.lr: expected a positive number, got "fast"'));
  it('refuses an unknown key with a "did you mean"', () => refuse(`${GOOD}\ntrain: { stpes: 10 }`, "p.yaml: train.stpes: unknown field; did you mean 'steps'?"));
  it('refuses a misspelt top-level section', () => refuse(`${GOOD}\ntrian: { steps: 10 }`, "p.yaml: trian: unknown field; did you mean 'train'?"));
  it('refuses a missing model section', () => refuse('out: x\n', 'p.yaml: model: missing; expected a mapping of model fields (d_model: 1024, …)'));
  it('refuses an unknown model field with a "did you mean"', () => refuse(`${GOOD.replace('d_model: 64', 'd_modle: 64')}`, "p.yaml: model.d_modle: unknown field; did you mean 'd_model'?"));
  it('refuses an impossible model with the model layer’s own message', () =>
    refuse(GOOD.replace('n_heads: 4', 'n_heads: 5'), 'p.yaml: model.d_model (64) must be divisible by model.n_heads (5)'));
  it('refuses a model field of the wrong type with the model layer’s message', () => refuse(GOOD.replace('n_layers: 2', 'n_layers: two'), 'p.yaml: model.n_layers: must be a positive integer, got "two"'));
  it('refuses a sequence length that the Lory segments do not divide', () =>
    refuse(`${GOOD.replace('segment_length: 32', 'segment_length: 48, experts: 4')}`, /p\.yaml: model\.context_length \(128\) must be a multiple of model\.segment_length \(48\)/));
  it('names NaN and Infinity (YAML .nan, .inf) as such, not as null', () => {
    refuse(`${GOOD}\ntrain: { lr: .nan }`, 'p.yaml: train.lr: expected a positive number, got NaN');
    refuse(`${GOOD}\ntrain: { steps: .inf }`, 'p.yaml: train.steps: expected a positive integer, got Infinity');
    refuse(GOOD.replace('d_model: 64', 'd_model: -.inf'), 'p.yaml: model.d_model: must be a positive integer, got -Infinity');
  });
  it('refuses a misspelt required field with its did-you-mean line alone', () =>
    refuse(GOOD.replace('data: { train: fixtures/corpus/train.jsonl }', 'data: { trian: fixtures/corpus/train.jsonl }'), "p.yaml: data.trian: unknown field; did you mean 'train'?"));
  it('refuses an unknown train.precision, naming the choices', () => {
    refuse(`${GOOD}\ntrain: { precision: fp16 }`, `p.yaml: train.precision: expected 'fp32' or 'bf16', got "fp16"`);
    refuse(`${GOOD}\nruns:\n  - { name: a, train: { precision: BF16 } }`, `p.yaml: runs[0].train.precision: expected 'fp32' or 'bf16', got "BF16"`);
  });
  it('reads train.precision, absent by default (fp32)', () => {
    const p = parsePipeline(`${GOOD}\ntrain: { precision: bf16 }\nruns:\n  - { name: a }\n  - { name: b, train: { precision: fp32 } }\n`, 'p.yaml');
    assert.deepEqual(p.runs.map((r) => r.train.precision), ['bf16', 'fp32']);
    assert.equal(parsePipeline(GOOD, 'p.yaml').runs[0]!.train.precision, undefined);
  });
  it('refuses a fraction out of range', () => refuse(`${GOOD}\ntrain: { warmup: 1.5 }`, 'p.yaml: train.warmup: expected a number in [0, 1], got 1.5'));
  it('refuses an unknown batching strategy inside a list', () => refuse(`${GOOD.replace('{ seq_len: 128 }', '{ seq_len: 128, strategies: [similarity, randm] }')}`, `p.yaml: batches.strategies[1]: expected 'similarity' or 'random', got "randm"`));
  it('refuses a run on batches the pipeline does not build, and a duplicate run name', () =>
    refuse(`${GOOD}\nruns:\n  - { name: a, batches: random }\n  - { name: a }\n`, /runs\[0\]\.batches: 'random' is not built; add it to batches\.strategies.*\n.*runs\[1\]\.name: 'a' is used twice/s));
  it('refuses a model vocabulary smaller than the tokenizer the pipeline trains', () =>
    refuse(`${GOOD}\ntokenizer: { vocab_size: 1000 }`, 'p.yaml: model.vocab_size (512) is smaller than tokenizer.vocab_size (1000): token ids would fall outside the embedding'));
  it('refuses files that do not exist when the pipeline is run', () => refuse(GOOD.replace('fixtures/corpus/train.jsonl', 'no/such.jsonl'), 'p.yaml: data.train: no/such.jsonl does not exist', true));
  it('refuses a pipeline without data when it is run', () => refuse(GOOD.replace('data: { train: fixtures/corpus/train.jsonl }', ''), /p\.yaml: data: missing; `lory run` needs data\.train/, true));
  it('refuses text that is not YAML or not a mapping', () => {
    refuse('model: [1, 2', /^p\.yaml: not valid YAML: /);
    refuse('- 1\n- 2\n', 'p.yaml: a pipeline must be a YAML mapping of sections (model:, train:, …)');
  });
  it('reports every problem of the file, one per line', () => {
    assert.throws(() => parsePipeline(`${GOOD}\ntrain: { lr: -1, steps: 0, bogus: 1 }`, 'p.yaml'), (e: Error) => e.message.split('\n').length === 3);
  });
});
