/**
 * Unusable checkpoints and held-out stores through `bin/lory`: a diverged (NaN) checkpoint, token ids
 * outside the vocabulary, a run whose `latest` pointer is missing or whose latest checkpoint is
 * damaged (eval, generate and inspect-experts fall back to the newest intact one, and say so), and
 * checkpoints named explicitly. Each row works on its own copy of a good run with checkpoints at
 * steps 10 and 20.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { tempDir } from '../../data/testing.js';
import { byteTokenizer, heldOutStore, tinyCheckpoint, tinyModel } from '../../eval/testing.js';
import { INSPECT_DOCS } from '../../inspect/testing.js';
import { initParams } from '../../model/index.js';
import { checkRows, damagedCopy, lory, type Row } from './table-testing.js';

const root = tempDir('ckpt-table');
const good = join(root, 'run');
const step = (run: string, n: number) => join(run, 'checkpoints', `step-0000000${n}`);
let store = '';

/** A copy of the good run as `name`, with `change` applied. */
function variant(name: string, change: (run: string) => void): string {
  const run = join(root, name);
  rmSync(run, { recursive: true, force: true });
  cpSync(good, run, { recursive: true });
  change(run);
  return run;
}

/** One flipped byte in step 20's weights; its manifest keeps the old sha256. */
const damagedLatest = () => variant('damaged', (run) => damagedCopy(join(run, 'checkpoints'), step(good, 20), 'step-000000020', 'model.safetensors', (b) => (b[b.length - 5]! ^= 0x08)));
const noPointer = () => variant('no-latest', (run) => rmSync(join(run, 'checkpoints', 'latest')));
const diverged = join(root, 'diverged');

/** The command's arguments for a checkpoint (and a held-out store, an output folder where it takes them). */
const commands: Record<string, (ckpt: string, o?: { data?: string; out?: string }) => string[]> = {
  'eval perplexity': (ckpt, o = {}) => ['eval', 'perplexity', ckpt, '--data', o.data ?? store, '--by', 'none', '--routing', 'segment'],
  generate: (ckpt) => ['generate', ckpt, 'ab', '-n', '3', '-t', '0'],
  'inspect-experts': (ckpt, o = {}) => ['inspect-experts', ckpt, '--data', o.data ?? store, '-o', o.out ?? join(root, 'out'), '--shuffles', '2'],
};
/** Rows that succeed write elsewhere than the rows' output (which must stay absent); warnings only on stderr. */
const succeeding = (args: string[]) => ['--log-level', 'warn', ...args];
const elsewhere = { out: join(root, 'out-ok') };

describe('lory eval perplexity, generate and inspect-experts with unusable or explicit checkpoints', () => {
  before(async () => {
    const tok = byteTokenizer(root);
    store = await heldOutStore(INSPECT_DOCS, tok);
    await tinyCheckpoint(tinyModel(), tok, 1, undefined, good);
    await tinyCheckpoint(tinyModel(), tok, 2, undefined, good);
    // A run that diverged between steps 10 and 20: its last checkpoint holds a NaN, hashes consistent.
    const nan = initParams(tinyModel(), 2);
    nan['layers.0.attn.wq']![17] = NaN;
    await tinyCheckpoint(tinyModel(), tok, 1, undefined, diverged);
    await tinyCheckpoint(tinyModel(), tok, 2, nan, diverged);
  });

  const oov = () => damagedCopy(root, store, 'oov', 'tokens.bin', (b) => b.writeUInt16LE(300, 2 * 5), true);
  const rows: Row[] = [];
  for (const [name, args] of Object.entries(commands)) {
    rows.push(
      { name: `${name}: a checkpoint holding NaN`, args: () => args(diverged), code: 2, message: `${step(diverged, 20)}: tensor layers.0.attn.wq holds NaN (at index 17); the run diverged before this checkpoint — use an earlier one: ${step(diverged, 10)}` },
      { name: `${name}: that checkpoint named explicitly`, args: () => args(step(diverged, 20)), code: 2, message: 'holds NaN (at index 17)' },
      { name: `${name}: no latest pointer (falls back, says so)`, args: () => succeeding(args(noPointer(), elsewhere)), code: 0, message: `warning: ${join(root, 'no-latest', 'checkpoints', 'latest')} is missing; using ${step(join(root, 'no-latest'), 20)}` },
      { name: `${name}: a damaged latest checkpoint (falls back, says so)`, args: () => succeeding(args(damagedLatest(), elsewhere)), code: 0, message: `warning: ${step(join(root, 'damaged'), 20)} is damaged (model.safetensors differs from its sha256 in the manifest); using ${step(join(root, 'damaged'), 10)}` },
      { name: `${name}: the damaged checkpoint named explicitly`, args: () => args(step(damagedLatest(), 20)), code: 2, message: `damaged (model.safetensors differs from its sha256 in the manifest); use an earlier one: ${step(join(root, 'damaged'), 10)} (in place of the run directory; \`lory train --from-checkpoint` },
      { name: `${name}: a step named by its number alone`, args: () => succeeding(args(join(good, 'checkpoints', 'step-10'), elsewhere)), code: 0, message: /^$/ },
    );
  }
  rows.push(
    { name: 'eval perplexity: a held-out store with a token id past the vocabulary (re-hashed)', args: () => commands['eval perplexity']!(good, { data: oov() }), code: 2, message: `${join(root, 'oov')}: damaged token store: tokens.bin: token 5 is 300, outside the vocabulary of 257` },
    { name: 'inspect-experts: a held-out store with a token id past the vocabulary (re-hashed)', args: () => commands['inspect-experts']!(good, { data: oov() }), code: 2, message: 'tokens.bin: token 5 is 300, outside the vocabulary of 257' },
  );
  checkRows(rows, join(root, 'out'), it);

  it('falls back to exactly what naming the earlier checkpoint gives; a step path reads that step', () => {
    const damaged = damagedLatest();
    const json = (args: string[]) => {
      const r = lory(...args, '--json');
      assert.equal(r.status, 0, r.stderr);
      return (JSON.parse(r.stdout) as { results: Array<{ checkpoint: { dir: string; step: number }; rows: unknown }> }).results.map((x) => [x.checkpoint.dir, x.checkpoint.step, x.rows]);
    };
    const fallback = json(commands['eval perplexity']!(damaged));
    assert.equal(fallback[0]![1], 10);
    assert.deepEqual(fallback, json(commands['eval perplexity']!(step(damaged, 10))));
    assert.deepEqual(json(commands['eval perplexity']!(step(good, 20))), json(commands['eval perplexity']!(good)));
    assert.notDeepEqual(json(commands['eval perplexity']!(step(good, 10)))[0]![2], json(commands['eval perplexity']!(good))[0]![2], 'steps 10 and 20 differ');

    const text = (args: string[]) => {
      const r = lory(...args);
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    assert.equal(text(commands.generate!(damaged)), text(commands.generate!(step(damaged, 10))));

    const stats = (ckpt: string, out: string) => {
      text(commands['inspect-experts']!(ckpt, { out }));
      return JSON.parse(readFileSync(join(out, 'routing-stats.json'), 'utf8')) as { checkpoint: unknown; layers: unknown };
    };
    const a = stats(damaged, join(root, 'experts-fallback'));
    const b = stats(step(damaged, 10), join(root, 'experts-explicit'));
    assert.deepEqual([a.checkpoint, a.layers], [b.checkpoint, b.layers]);
  });
});
