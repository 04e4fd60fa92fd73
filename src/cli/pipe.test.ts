/**
 * Output into a closed pipe (`lory … | head`): whatever the command, a reader that goes away early
 * must never cost a Node stack. Each case spawns bin/lory with stdout piped to this process, which
 * closes its end: before the child writes anything, or after the first line.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/testing.js';
import { PROJECT_ROOT } from '../runtime/index.js';
import { readCheckpoint } from '../train/checkpoint.js';
import { fixtureBatches } from '../train/testing.js';

const LORY = join(PROJECT_ROOT, 'bin', 'lory');

interface Closed {
  code: number | null;
  stderr: string;
  /** What was read before closing. */
  read: string;
}

/** Runs lory with stdout piped here; closes the pipe once `lines` lines arrived (0: at once, before lory starts). */
function withReaderClosing(args: string[], lines: number): Promise<Closed> {
  return new Promise((resolve, reject) => {
    const child = spawn(LORY, args, { cwd: PROJECT_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let read = '';
    let stderr = '';
    if (lines === 0) child.stdout.destroy();
    else {
      child.stdout.on('data', (d: Buffer) => {
        read += d.toString();
        if (read.split('\n').length > lines) child.stdout.destroy();
      });
    }
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr, read }));
  });
}

const noStack = (r: Closed) => {
  assert.doesNotMatch(r.stderr, /EPIPE|internal error|\n\s+at |node:events/, r.stderr);
};

describe('output into a closed pipe', () => {
  // Long help (written in several pieces by commander), JSON and tables: each exits as it would have, quietly.
  const cases: Array<[string, string[]]> = [
    ['lory eval perplexity --help', ['eval', 'perplexity', '--help']],
    ['lory --help', ['--help']],
    ['lory params --json', ['params', 'pipelines/demo.yaml', '--json']],
    ['lory params (a table)', ['params', 'pipelines/demo.yaml']],
  ];
  for (const [name, args] of cases) {
    it(`${name}: exit 0, nothing on stderr`, async () => {
      const r = await withReaderClosing(args, 0);
      noStack(r);
      assert.equal(r.stderr, '');
      assert.equal(r.code, 0);
    });
  }

  it('a full disk under stdout (> /dev/full): one line naming stdout and the reason, exit 2', { skip: existsSync('/dev/full') ? false : 'no /dev/full here' }, () => {
    const full = openSync('/dev/full', 'w');
    try {
      const r = spawnSync(LORY, ['params', 'pipelines/demo.yaml', '--json'], { cwd: PROJECT_ROOT, stdio: ['ignore', full, 'pipe'], encoding: 'utf8' });
      assert.equal(r.stderr, 'error: stdout: cannot write: no space left on device (ENOSPC)\n');
      assert.equal(r.status, 2);
    } finally {
      closeSync(full);
    }
  });

  it('lory train --json | head -1: stops as after Ctrl-C (checkpoint saved, exit 130, a resume line), no stack', async () => {
    const { batches } = await fixtureBatches();
    const dir = tempDir('cli-pipe-train');
    const config = join(dir, 'p.yaml');
    writeFileSync(
      config,
      `model: { vocab_size: 320, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, experts: 4, ffn_impl: standard }
train: { steps: 400, micro_batch: 4, lr: 3.0e-3, dense_warmup: 0.01, valid_every: 0, valid_batches: 2, checkpoint_every: 1000, threads: 1 }
`,
    );
    const run = join(dir, 'run');
    const r = await withReaderClosing(['train', batches, '-o', run, '--config', config, '--json'], 1);
    assert.equal(JSON.parse(r.read.split('\n')[0]!).type, 'start');
    noStack(r);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /stdout was closed/);
    assert.match(r.stderr, /training stopped after step \d+ of 400; checkpoint saved in .*; run the same command again to resume: lory train /);
    const ck = readCheckpoint(run);
    assert.ok(ck.step > 0 && ck.step < 400, `checkpoint at step ${ck.step}`);
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('.lory-')),
      [],
      'no temporary directory or lock left',
    );
    assert.ok(existsSync(join(run, 'metrics.jsonl')));
  });
});
