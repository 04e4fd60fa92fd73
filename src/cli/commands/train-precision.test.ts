/** `lory train` with train.precision: bf16 on the CPU says once that it is emulated; a bad value is one line, exit 2. */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { tempDir } from '../../data/testing.js';
import { EMULATED_NOTE } from '../../graph/index.js';
import { fixtureBatches } from '../../train/testing.js';
import { checkRows, lory, type Row } from './table-testing.js';

const PIPELINE = (precision: string) => `
model: { vocab_size: 320, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, ffn_impl: standard }
train: { steps: 2, micro_batch: 2, valid_every: 0, checkpoint_every: 2, threads: 1, precision: ${precision} }
`;

const root = tempDir('train-precision');
let batches = '';
const config = (name: string, precision: string) => {
  const path = join(root, `${name}.yaml`);
  writeFileSync(path, PIPELINE(precision));
  return path;
};

describe('lory train --config with train.precision', () => {
  before(async () => {
    batches = (await fixtureBatches()).batches;
  });

  it('bf16 on the CPU trains, saying once on stderr that it is emulated', () => {
    const r = lory('train', batches, '-o', join(root, 'bf16'), '--config', config('bf16', 'bf16'));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.split('\n').filter((l) => l.includes(EMULATED_NOTE)).length, 1, r.stderr);
    const f = lory('train', batches, '-o', join(root, 'fp32'), '--config', config('fp32', 'fp32'));
    assert.equal(f.status, 0, f.stderr);
    assert.doesNotMatch(f.stderr, /emulated/);
  });

  const out = join(root, 'run');
  const rows: Row[] = [
    { name: 'train.precision fp16', args: () => ['train', batches, '-o', out, '--config', config('fp16', 'fp16')], code: 2, message: `train.precision: expected 'fp32' or 'bf16', got "fp16"` },
    { name: 'train.precision true', args: () => ['train', batches, '-o', out, '--config', config('bool', 'true')], code: 2, message: `train.precision: expected 'fp32' or 'bf16', got true` },
  ];
  checkRows(rows, out, it);
});
