import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../runtime/index.js';

const lory = (...args: string[]) => spawnSync(join(PROJECT_ROOT, 'bin', 'lory'), args, { encoding: 'utf8', cwd: PROJECT_ROOT });

test('lory params prints total and active parameters and FLOPs per token of a pipeline', () => {
  const r = lory('params', 'pipelines/paper-0.3b-32e.yaml');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /total\s+6,810,813,440 {2}\(6\.81B\)/);
  assert.match(r.stdout, /active\s+374,653,952/);
  assert.match(r.stdout, /32 experts in every FFN layer, segment length 256/);
  assert.match(r.stdout, /FLOPs\/token\s+forward 1\.14G, training 3\.41G \(3 × forward\) at sequence length 4096/);
});

test('lory params gives one table row per pipeline, and JSON with --json', () => {
  const t = lory('params', 'pipelines/paper-1.5b-8e.yaml', 'pipelines/paper-1.5b-32e.yaml');
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^pipeline\s+layers/);
  assert.match(t.stdout, /paper-1\.5b-32e\.yaml\s+48\s+1536\s+24\s+4096\s+32\s+lory\s+29\.5B\s+1\.46B/);
  const j = lory('params', '--json', '--seq', '2048', 'pipelines/paper-1.5b-8e.yaml');
  const [report] = JSON.parse(j.stdout) as Array<{ params: { total: number }; flopsPerToken: { seq: number }; model: { experts: number } }>;
  assert.equal(report!.params.total, 7_799_784_960);
  assert.equal(report!.flopsPerToken.seq, 2048);
  assert.equal(report!.model.experts, 8);
});

test('lory params reports the token-level kinds: routing, active experts per token, expert slots computed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lory-params-'));
  const common = 'model:\n  d_model: 1024\n  n_layers: 24\n  n_heads: 16\n  experts: 8\n';
  const files = {
    ec: `${common}  moe: expert_choice\n`,
    top1: `${common}  moe: top_k\n  top_k: 1\n  capacity_factor: 1.25\n`,
    top2: `${common}  moe: top_k\n`,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, `${name}.yaml`), text);
  const ec = lory('params', join(dir, 'ec.yaml'));
  assert.equal(ec.status, 0, ec.stderr);
  assert.match(ec.stdout, /8 experts in every FFN layer, expert choice, capacity factor 1 \(per sequence: not causal, as the paper compared it\)/);
  assert.match(ec.stdout, /active\s+374,064,128 .*each token meets 1 expert per layer on average/, 'the active size of paper-0.3b-8e (Lory)');
  assert.match(ec.stdout, /FFN computes 1\.00 expert slots per token/);
  const top1 = lory('params', join(dir, 'top1.yaml'));
  assert.match(top1.stdout, /top-1 token choice, capacity factor 1\.25 \(per sequence\), load-balancing loss weight 0\.01/);
  assert.match(top1.stdout, /active\s+374,064,128 .*each token meets 1 expert per layer/);
  assert.match(top1.stdout, /FFN computes 1\.25 expert slots per token/);
  const t = lory('params', join(dir, 'top2.yaml'), join(dir, 'ec.yaml'), 'pipelines/paper-0.3b-8e.yaml');
  assert.match(t.stdout, /top2\.yaml\s+24\s+1024\s+16\s+2816\s+8\s+top-2\s+1\.83B\s+582M/);
  assert.match(t.stdout, /ec\.yaml\s+24\s+1024\s+16\s+2816\s+8\s+expert_choice\s+1\.83B\s+374M/);
});

test('lory params exits 2 with one line for a missing file or an impossible model', () => {
  const missing = lory('params', 'no-such.yaml');
  assert.equal(missing.status, 2);
  assert.equal(missing.stderr.trim(), 'error: no-such.yaml: not found; expected a pipeline file (YAML)');
  const dir = mkdtempSync(join(tmpdir(), 'lory-params-'));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'train: {steps: 3}\nmodel:\n  d_model: 1000\n  n_heads: 16\n');
  const r = lory('params', bad);
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim(), `error: ${bad}: model.d_model (1000) must be divisible by model.n_heads (16)`);
});

// Class 4 of issue 12: a pipeline whose model: section is misspelt, empty or missing, or that has an
// unknown top-level section, must not print the default model. The fragments are what any validator
// says (the model section and the offending key are named), so the rows hold whichever lands.
const pipelineRows: Array<{ name: string; yaml: string; fragment: RegExp }> = [
  { name: 'a misspelt model: key', yaml: 'modle:\n  d_model: 256\n  n_layers: 2\n  n_heads: 4\n', fragment: /modle.*(unknown|unrecognized|not a known)|(unknown|unrecognized).*modle/i },
  { name: 'an empty model: section', yaml: 'model:\ntrain: {steps: 3}\n', fragment: /model/ },
  { name: 'no model: section at all', yaml: 'train: {steps: 3}\n', fragment: /model/ },
  { name: 'an unknown top-level section', yaml: 'model:\n  d_model: 256\n  n_layers: 2\n  n_heads: 4\ntrian: {steps: 3}\n', fragment: /trian/ },
  { name: 'a model: that is a list', yaml: 'model: [1, 2]\n', fragment: /model/ },
];

for (const row of pipelineRows) {
  test(`lory params on ${row.name} exits 2 with one line, not the default model`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-params-'));
    const file = join(dir, 'pipeline.yaml');
    writeFileSync(file, row.yaml);
    const r = lory('params', file);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.equal(r.stdout, '', 'no model printed');
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^error: .*pipeline\.yaml/);
    assert.match(r.stderr, row.fragment);
  });
}

test('lory params prints the training memory per rank, the same estimate `lory train` checks', () => {
  const r = lory('params', 'pipelines/paper-0.3b-32e.yaml');
  assert.equal(r.status, 0, r.stderr);
  // 6.81B parameters × 4 bytes: weights ×2 = 54.5 GB, AdamW state ×4 = 109 GB, gradients 27.2 GB.
  assert.match(r.stdout, /memory\s+training needs ~\d+ GB per rank \(one process on one device; this machine has [\d.]+ GB\)\n\s+weights 54\.5 GB, AdamW state 109 GB, gradients 27\.2 GB, activations [\d.]+ GB at micro-batch \d+ × \d+ tokens/);
  const j = lory('params', '--json', 'pipelines/demo.yaml');
  const reports = JSON.parse(j.stdout) as Array<{ params: { total: number }; memory: { weights: number; total: number; seq: number } }>;
  assert.equal(reports[0]!.memory.weights, 2 * 4 * reports[0]!.params.total);
  assert.equal(reports[0]!.memory.seq, 256, 'batches.seq_len of the pipeline');
  const t = lory('params', 'pipelines/demo.yaml', 'pipelines/paper-0.3b-8e.yaml');
  assert.match(t.stdout, /train memory\/rank\n.*~0\.\d\d GB\n.*~0\.\d\d GB\n.*~\d+ GB\n/);
});

test('lory params counts train.recompute: the activations of one layer input per layer instead of every layer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lory-params-'));
  const common = 'model:\n  d_model: 1024\n  n_layers: 24\n  n_heads: 16\n  context_length: 4096\nbatches:\n  seq_len: 4096\n';
  writeFileSync(join(dir, 'plain.yaml'), `${common}train: {micro_batch: 1}\n`);
  writeFileSync(join(dir, 're.yaml'), `${common}train: {micro_batch: 1, recompute: true}\n`);
  const [plain, re] = ['plain', 're'].map((n) => JSON.parse(lory('params', '--json', join(dir, `${n}.yaml`)).stdout)[0].memory as { activations: number; total: number; recompute: boolean });
  assert.equal(plain!.recompute, false);
  assert.equal(re!.recompute, true);
  assert.ok(re!.activations < plain!.activations / 5, `recompute ${re!.activations} vs ${plain!.activations}`);
  assert.equal(plain!.total - re!.total, plain!.activations - re!.activations);
  const r = lory('params', join(dir, 're.yaml'));
  assert.match(r.stdout, /activations [\d.]+ GB at micro-batch 1 × 4096 tokens \(layers recomputed\)/);
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, `${common}train: {recompute: 'yes'}\n`);
  const b = lory('params', bad);
  assert.equal(b.status, 2);
  assert.match(b.stderr.trim(), /^error: .*bad\.yaml.*train\.recompute.*true or false[^\n]*$/);
});

test('lory params --ranks N prints the memory per rank with the AdamW state whole and sharded', () => {
  const r = lory('params', '--ranks', '8', 'pipelines/paper-0.3b-32e.yaml');
  assert.equal(r.status, 0, r.stderr);
  // Every rank: AdamW state 109 GB; sharded, the busiest of 8 ranks keeps 13.8 GB (whole tensors, ~1/8).
  assert.match(r.stdout, /on 8 ranks\s+~\d+ GB per rank \(AdamW state 109 GB on every rank\); ~\d+ GB with train\.shard_optimizer \(AdamW state 13\.8 GB on the busiest rank\)/);
  const j = JSON.parse(lory('params', '--json', '--ranks', '8', 'pipelines/paper-0.3b-32e.yaml').stdout) as Array<{ ranks: { count: number; unsharded: { total: number; optimizer: number }; sharded: { total: number; optimizer: number } } }>;
  const { unsharded, sharded } = j[0]!.ranks;
  assert.equal(unsharded.total - sharded.total, unsharded.optimizer - sharded.optimizer, 'sharding changes the AdamW state only');
  const bad = lory('params', '--ranks', '0', 'pipelines/demo.yaml');
  assert.equal(bad.status, 2);
});
