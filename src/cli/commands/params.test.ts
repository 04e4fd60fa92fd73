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
  assert.match(t.stdout, /paper-1\.5b-32e\.yaml\s+48\s+1536\s+24\s+4096\s+32\s+29\.5B\s+1\.46B/);
  const j = lory('params', '--json', '--seq', '2048', 'pipelines/paper-1.5b-8e.yaml');
  const [report] = JSON.parse(j.stdout) as Array<{ params: { total: number }; flopsPerToken: { seq: number }; model: { experts: number } }>;
  assert.equal(report!.params.total, 7_799_784_960);
  assert.equal(report!.flopsPerToken.seq, 2048);
  assert.equal(report!.model.experts, 8);
});

test('lory params exits 2 with one line for a missing file or an impossible model', () => {
  const missing = lory('params', 'no-such.yaml');
  assert.equal(missing.status, 2);
  assert.equal(missing.stderr.trim(), 'error: cannot read pipeline no-such.yaml: ENOENT');
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
