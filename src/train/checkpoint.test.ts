import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readTensors, writeSafetensors } from '../artifacts/safetensors.js';
import { tempDir } from '../data/testing.js';
import { initParams, paramSpecs, resolveModelConfig, type ModelConfig } from '../model/index.js';
import { ADAM_M, ADAM_V, checkpointOfRun, listCheckpoints, pruneCheckpoints, readCheckpoint, writeCheckpoint, type CheckpointState } from './checkpoint.js';

const tiny = (over: Partial<ModelConfig> = {}) =>
  resolveModelConfig({ vocabSize: 40, dModel: 8, nLayers: 2, nHeads: 2, dFf: 16, contextLength: 32, segmentLength: 8, ffnImpl: 'standard', ...over });

function tokenizer(dir: string): string {
  const p = join(dir, 'tokenizer.json');
  writeFileSync(p, '{"model":{"type":"BPE"},"note":"stand-in bytes: checkpoints copy the file verbatim"}');
  return p;
}

function moments(c: ModelConfig, seed: number) {
  const m = initParams(c, seed);
  const v = initParams(c, seed + 1);
  for (const a of Object.values(v)) for (let i = 0; i < a.length; i++) a[i] = a[i]! * a[i]!;
  return { m, v };
}

const state = (step: number, extra: Partial<CheckpointState> = {}): CheckpointState => ({
  step,
  tokensSeen: step * 64,
  cursor: { epoch: 0, position: step * 2 },
  rng: { seed: 5 },
  phase: 'moe',
  ...extra,
});

async function saved(c = tiny({ experts: 4 }), step = 3) {
  const run = tempDir('ckpt');
  const params = initParams(c, 7);
  const adam = moments(c, 11);
  const dir = await writeCheckpoint({ runDir: run, state: state(step, { validLoss: 2.5 }), model: c, config: { train: { lr: 1e-3 } }, params, adam, tokenizerPath: tokenizer(run) }, { isBest: true });
  return { run, dir, c, params, adam };
}

describe('checkpoints', () => {
  it('round-trips parameters, AdamW moments, state and config bit for bit, via the run dir or the checkpoint dir', async () => {
    const { run, dir, c, params, adam } = await saved();
    for (const path of [run, dir]) {
      const ck = readCheckpoint(path, { optimizer: true });
      assert.equal(ck.dir, dir);
      assert.equal(ck.step, 3);
      assert.deepEqual(ck.model, c);
      assert.deepEqual((ck.config as { train: unknown }).train, { lr: 1e-3 });
      assert.equal(ck.state.validLoss, 2.5);
      assert.deepEqual(ck.state.cursor, { epoch: 0, position: 6 });
      for (const s of paramSpecs(c)) {
        assert.deepEqual(ck.params[s.name], params[s.name], s.name);
        assert.deepEqual(ck.adam!.m[s.name], adam.m[s.name]);
        assert.deepEqual(ck.adam!.v[s.name], adam.v[s.name]);
      }
      assert.equal(readFileSync(ck.tokenizerPath, 'utf8'), readFileSync(join(run, 'tokenizer.json'), 'utf8'));
      assert.match(ck.tokenizerHash, /^[0-9a-f]{64}$/);
    }
    assert.equal(readCheckpoint(run, { which: 'best' }).dir, dir);
  });

  it('writes safetensors with the standard layout: 8-aligned header, F32/F64 by model dtype, moments named adam_m/ and adam_v/', async () => {
    const { dir } = await saved(tiny({ dtype: 'float64' }));
    const raw = readFileSync(join(dir, 'model.safetensors'));
    assert.equal(Number(raw.readBigUInt64LE(0)) % 8, 0);
    const header = JSON.parse(raw.toString('utf8', 8, 8 + Number(raw.readBigUInt64LE(0)))) as Record<string, { dtype: string; shape: number[] }>;
    assert.equal(header.embed!.dtype, 'F64');
    assert.deepEqual(header.embed!.shape, [40, 8]);
    const opt = readTensors(join(dir, 'optimizer.safetensors')).tensors;
    assert.ok(opt.has(ADAM_M('lm_head')) && opt.has(ADAM_V('layers.1.ffn.w_down')));
    assert.equal(readCheckpoint(dir).params.embed instanceof Float64Array, true);
  });

  it('refuses a truncated tensor file, naming it', async () => {
    const { dir } = await saved();
    const file = join(dir, 'model.safetensors');
    const { size } = await import('node:fs').then((fs) => fs.statSync(file));
    truncateSync(file, size - 5);
    assert.throws(() => readCheckpoint(dir), { name: 'InputError', message: /model\.safetensors is \d+ bytes, the manifest says \d+\); no earlier checkpoint is left: train again/ });
  });

  it('refuses a file whose bytes changed (sha256), a tensor of another shape, dtype or config, each in one line naming the tensor', async () => {
    const { dir, c, params } = await saved();
    const file = join(dir, 'model.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x40;
    writeFileSync(file, bytes);
    assert.throws(() => readCheckpoint(dir), { name: 'InputError', message: /: damaged \(model\.safetensors differs from its sha256 in the manifest\)/ });

    // Rewrite the file and the manifest hash so only the tensor check can catch the mismatch.
    const rewrite = async (tensors: ReadonlyArray<readonly [string, { shape: number[]; data: Float32Array | Float64Array }]>) => {
      writeSafetensors(file, tensors);
      const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
      const buf = readFileSync(file);
      manifest.files['model.safetensors'] = { bytes: buf.length, sha256: (await import('node:crypto')).createHash('sha256').update(buf).digest('hex') };
      writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
    };
    const specs = paramSpecs(c);
    await rewrite(specs.map((s) => [s.name, { shape: s.name === 'lm_head' ? [s.shape[1]!, s.shape[0]!] : s.shape, data: params[s.name]! }] as const));
    assert.throws(() => readCheckpoint(dir), { message: /tensor lm_head has shape \[40,8\], expected \[8,40\]/ });
    await rewrite(specs.map((s) => [s.name, { shape: s.shape, data: s.name === 'embed' ? Float64Array.from(params[s.name]!) : params[s.name]! }] as const));
    assert.throws(() => readCheckpoint(dir), { message: /tensor embed is F64, expected F32 for a float32 model/ });
    const dense = initParams(tiny(), 1);
    await rewrite(paramSpecs(tiny()).map((s) => [s.name, { shape: s.shape, data: dense[s.name]! }] as const));
    assert.throws(() => readCheckpoint(dir), { message: /tensor layers\.0\.ffn\.router is missing/ });
    await rewrite([...specs.map((s) => [s.name, { shape: s.shape, data: params[s.name]! }] as const), ['stray', { shape: [1], data: Float32Array.of(1) }]]);
    assert.throws(() => readCheckpoint(dir), { message: /unexpected tensor stray/ });
  });

  it('refuses a directory that is no checkpoint, and a run without a best checkpoint', async () => {
    const empty = tempDir('ckpt-none');
    assert.throws(() => readCheckpoint(empty), { name: 'InputError', message: /not a lory artifact; expected a checkpoint or a run directory/ });
    const run = tempDir('ckpt-nobest');
    const c = tiny();
    await writeCheckpoint({ runDir: run, state: state(1, { phase: 'dense' }), model: c, config: {}, params: initParams(c), tokenizerPath: tokenizer(run) });
    assert.throws(() => readCheckpoint(run, { which: 'best' }), { message: /no best checkpoint/ });
    assert.throws(() => readCheckpoint(run, { optimizer: true }), { message: /holds no optimizer\.safetensors/ });
  });

  it('keeps the last N checkpoints plus the best one', async () => {
    const run = tempDir('ckpt-prune');
    const c = tiny();
    const tok = tokenizer(run);
    for (const step of [1, 2, 3, 4, 5]) {
      await writeCheckpoint({ runDir: run, state: state(step), model: c, config: {}, params: initParams(c), tokenizerPath: tok }, { isBest: step === 2 });
      pruneCheckpoints(run, 2);
    }
    assert.deepEqual(listCheckpoints(run), ['step-000000002', 'step-000000004', 'step-000000005']);
    assert.equal(readCheckpoint(run).step, 5);
    assert.equal(readCheckpoint(run, { which: 'best' }).step, 2);
    assert.equal(existsSync(join(run, 'checkpoints', 'latest.tmp-' + process.pid)), false);
  });
  /** A run with checkpoints at steps 1, 2, 3 (distinct weights), `latest` → step 3. */
  async function threeSteps() {
    const run = tempDir('ckpt-three');
    const c = tiny();
    const tok = tokenizer(run);
    const params = [1, 2, 3].map((step) => initParams(c, step));
    const dirs: string[] = [];
    for (const [i, p] of params.entries()) dirs.push(await writeCheckpoint({ runDir: run, state: state(i + 1), model: c, config: {}, params: p, adam: moments(c, i), tokenizerPath: tok }));
    return { run, c, params, dirs };
  }

  /** Flip one byte of a checkpoint file (its manifest keeps the old sha256). */
  const flip = (file: string) => {
    const b = readFileSync(file);
    b[b.length - 3] = b[b.length - 3]! ^ 0x10;
    writeFileSync(file, b);
  };

  it('refuses a NaN or infinite weight (hashes consistent: written so), naming the tensor, the index and the earlier checkpoint; no fallback past it', async () => {
    const run = tempDir('ckpt-nan');
    const c = tiny();
    const tok = tokenizer(run);
    const good = await writeCheckpoint({ runDir: run, state: state(1), model: c, config: {}, params: initParams(c, 1), adam: moments(c, 1), tokenizerPath: tok });
    const diverged = initParams(c, 2);
    diverged['layers.0.attn.wq']![17] = NaN;
    const bad = await writeCheckpoint({ runDir: run, state: state(2), model: c, config: {}, params: diverged, adam: moments(c, 2), tokenizerPath: tok });
    const message = `${bad}: tensor layers.0.attn.wq holds NaN (at index 17); the run diverged before this checkpoint — use an earlier one: ${good}`;
    const warned: string[] = [];
    for (const path of [run, bad]) assert.throws(() => readCheckpoint(path, { onWarn: (m) => warned.push(m) }), (e: Error) => e.name === 'InputError' && e.message.startsWith(message) && !e.message.includes('\n'));
    assert.deepEqual(warned, [], 'a diverged latest checkpoint is refused, not skipped');
    assert.equal(readCheckpoint(good).step, 1);

    // Infinity in a moment: refused when resuming (the optimizer is read), not for evaluation.
    const run2 = tempDir('ckpt-inf');
    const adam = moments(c, 3);
    adam.v['lm_head']![0] = Infinity;
    const dir2 = await writeCheckpoint({ runDir: run2, state: state(4), model: c, config: {}, params: initParams(c, 4), adam, tokenizerPath: tokenizer(run2) });
    assert.throws(() => readCheckpoint(run2, { optimizer: true }), { message: `${dir2}: tensor adam_v/lm_head holds Infinity (at index 0); the run diverged before this checkpoint — no earlier checkpoint is left: train again with \`lory train … --force\`` });
    assert.equal(readCheckpoint(run2).step, 4);
  });

  it("falls back from a missing `latest` pointer to the newest intact checkpoint, saying so once", async () => {
    const { run, dirs, params } = await threeSteps();
    rmSync(join(run, 'checkpoints', 'latest'));
    const warned: string[] = [];
    const ck = readCheckpoint(run, { optimizer: true, onWarn: (m) => warned.push(m) });
    assert.equal(ck.dir, dirs[2]);
    assert.deepEqual(ck.params, params[2]);
    assert.deepEqual(warned, [`${join(run, 'checkpoints', 'latest')} is missing; using ${dirs[2]}`]);
    // A pointer naming a checkpoint that is gone: the same.
    writeFileSync(join(run, 'checkpoints', 'latest'), 'step-000000009\n');
    warned.length = 0;
    assert.equal(readCheckpoint(run, { onWarn: (m) => warned.push(m) }).dir, dirs[2]);
    assert.match(warned.join('|'), /latest names step-000000009, which does not exist; using .*step-000000003$/);
    // No checkpoint at all: the old refusal.
    const empty = tempDir('ckpt-empty');
    cpSync(run, empty, { recursive: true });
    for (const d of listCheckpoints(empty)) rmSync(join(empty, 'checkpoints', d), { recursive: true });
    assert.throws(() => readCheckpoint(empty), { message: /latest names step-000000009, which does not exist; the run has no latest checkpoint/ });
  });

  it('falls back from a damaged latest checkpoint to the newest intact one (equal to naming it), but not for `best` or a checkpoint named explicitly', async () => {
    const { run, dirs, params } = await threeSteps();
    flip(join(dirs[2]!, 'model.safetensors'));
    rmSync(join(dirs[1]!, 'state.json'));
    const warned: string[] = [];
    const ck = readCheckpoint(run, { optimizer: true, onWarn: (m) => warned.push(m) });
    assert.equal(ck.dir, dirs[0]);
    assert.deepEqual(ck.params, params[0]);
    assert.deepEqual(ck, readCheckpoint(dirs[0]!, { optimizer: true }), 'the fallback reads what naming the checkpoint reads');
    assert.deepEqual(warned, [`${dirs[2]} is damaged (model.safetensors differs from its sha256 in the manifest); ${dirs[1]} is damaged (state.json is missing); using ${dirs[0]}`]);
    // Named explicitly: refused, naming the checkpoint before it (whether or not intact: the user judges) and the option.
    assert.throws(() => readCheckpoint(dirs[2]!), { message: `${dirs[2]}: damaged (model.safetensors differs from its sha256 in the manifest); use an earlier one: ${dirs[1]} (in place of the run directory; \`lory train --from-checkpoint ${dirs[1]}\` resumes from it)` });
    // `best` names one checkpoint on purpose.
    writeFileSync(join(run, 'checkpoints', 'best'), 'step-000000003\n');
    assert.throws(() => readCheckpoint(run, { which: 'best', onWarn: () => assert.fail('no fallback for best') }), { message: /step-000000003: damaged \(model\.safetensors.*use an earlier one: .*step-000000002/ });
    // Every checkpoint damaged: refused, naming the latest.
    flip(join(dirs[0]!, 'tokenizer.json'));
    assert.throws(() => readCheckpoint(run, { onWarn: () => {} }), { message: `${dirs[2]}: damaged (model.safetensors differs from its sha256 in the manifest); no earlier checkpoint is left: train again with \`lory train … --force\`` });
  });

  it('reads a checkpoint named by its step number alone, and checks a --from-checkpoint path belongs to the run', async () => {
    const { run, dirs } = await threeSteps();
    assert.equal(readCheckpoint(join(run, 'checkpoints', 'step-2')).dir, dirs[1]);
    assert.equal(checkpointOfRun(run, join(run, 'checkpoints', 'step-1')), dirs[0]);
    assert.equal(checkpointOfRun(run, dirs[1]!), dirs[1]);
    const other = await threeSteps();
    assert.throws(() => checkpointOfRun(run, other.dirs[0]!), { message: new RegExp(`not a checkpoint of the run ${run}; expected ${join(run, 'checkpoints')}/step-…`) });
    assert.throws(() => checkpointOfRun(run, join(run, 'checkpoints', 'step-7')), { message: /step-7: not found; the run's checkpoints: step-000000001, step-000000002, step-000000003/ });
    writeFileSync(join(run, 'manifest.json'), JSON.stringify({ kind: 'run', formatVersion: 1, tool: { version: 'x' }, inputs: [], params: {}, files: {}, contentHash: '', stats: {} }));
    assert.throws(() => checkpointOfRun(run, dirs[0]!), { message: /the run is finished; --from-checkpoint continues an unfinished run/ });
  });
});
