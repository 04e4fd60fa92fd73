/**
 * The run folder across calls (issue 20): an interrupt anywhere — a checkpoint step, a validation
 * step, the last step — leaves a run that resumes to exactly the straight run's records; a changed
 * config is named field by field and a longer run can be extended; a restart keeps the user's files;
 * a diverged run stops with its last finite checkpoint; nothing is written before the memory check.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../data/testing.js';
import { CHECKPOINTS_DIR, FILES, listCheckpoints, readCheckpoint } from './checkpoint.js';
import { train, type TrainOptions } from './loop.js';
import { lrAt } from './schedule.js';
import { fixtureBatches, tinyModel, tinyTrain } from './testing.js';

const PEAK = 1e10;

async function run(over: Partial<TrainOptions> & Pick<TrainOptions, 'model' | 'train'>, out: string) {
  const { batches } = await fixtureBatches();
  return train({ batches, out, config: { test: true }, peakFlops: PEAK, ...over });
}

/** metrics.jsonl without the fields that measure time (they differ between any two runs). */
function records(runDir: string): object[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { tokensPerSecond, mfu, stepMs, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });
}

function manifestStats(runDir: string): object {
  const { stats } = JSON.parse(readFileSync(join(runDir, 'manifest.json'), 'utf8')) as { stats: Record<string, unknown> };
  const { seconds, medianTokensPerSecond, medianMfu, ...rest } = stats;
  return rest;
}

const pointer = (runDir: string, which: 'latest' | 'best') => readFileSync(join(runDir, CHECKPOINTS_DIR, FILES[which]), 'utf8').trim();

describe('the run folder', () => {
  it('resumes an interrupt at a checkpoint step, a validation step, any step or the last step to exactly the straight run: metrics, validations, manifest, best', async () => {
    const model = tinyModel({ experts: 4 });
    // Validation every 2 steps, checkpoints every 4; the loss rises and falls, so `best` is not simply the last.
    const settings = tinyTrain({ steps: 8, valid_every: 2, checkpoint_every: 4, keep_last: 10, dense_warmup: 0.25 });
    const straight = join(tempDir('rundir-straight'), 'run');
    await run({ model, train: settings }, straight);
    for (const stopAfter of [2, 3, 4, 8]) {
      const out = join(tempDir(`rundir-stop${stopAfter}`), 'run');
      const first = run({ model, train: settings, stopAfter }, out);
      if (stopAfter < 8) await assert.rejects(first, { name: 'InterruptedError' });
      else await first; // the last step finishes the run: its validation and manifest included
      if (stopAfter < 8) await run({ model, train: settings }, out);
      assert.deepEqual(records(out), records(straight), `stopped after step ${stopAfter}`);
      assert.deepEqual(manifestStats(out), manifestStats(straight), `stopped after step ${stopAfter}`);
      assert.equal(pointer(out, 'best'), pointer(straight, 'best'), `stopped after step ${stopAfter}`);
      assert.equal(pointer(out, 'latest'), pointer(straight, 'latest'));
      assert.deepEqual(readCheckpoint(out).params, readCheckpoint(straight).params);
    }
  });

  it('names the changed fields of another config, offers --extend when only train.steps grew, and extends to the longer schedule', async () => {
    const model = tinyModel();
    const out = join(tempDir('rundir-extend'), 'run');
    const short = tinyTrain({ steps: 6 });
    await run({ model, train: short }, out);
    await assert.rejects(run({ model: tinyModel({ dModel: 64 }), train: tinyTrain({ steps: 6, lr: 1e-3 }) }, out), {
      name: 'InputError',
      message: /run: holds a run of another config \((model\.d_model 32 → 64, train\.lr 0\.003 → 0\.001|train\.lr 0\.003 → 0\.001, model\.d_model 32 → 64)\); use --force to start it over, or another -o$/,
    });
    const long = tinyTrain({ steps: 9 });
    await assert.rejects(run({ model, train: long }, out), {
      message: /\(train\.steps 6 → 9\); use --force .*; or --extend to continue it to 9 steps \(steps 7–9 follow the 9-step schedule: the learning rate goes from 0\.0003 at step 6 to [0-9.]+ at step 7\)/,
    });
    const before = records(out);
    const extended = await run({ model, train: long, extend: true }, out);
    assert.equal(extended.losses.length, 3);
    const after = records(out) as Array<{ type: string; step: number; lr: number }>;
    assert.deepEqual(after.slice(0, before.length), before, 'the first 6 steps are kept as they were');
    const schedule = { lr: long.lr, steps: 9, warmup: long.warmup, minLrRatio: long.min_lr_ratio };
    assert.deepEqual(
      after.filter((l) => l.type === 'step' && l.step > 6).map((l) => l.lr),
      [7, 8, 9].map((s) => lrAt(schedule, s)),
    );
    assert.equal(extended.manifest!.stats.steps, 9);
    assert.equal((await run({ model, train: long }, out)).skipped, true, 'the extended run is the 9-step run now');
  });

  it('--force refuses a run folder holding the user\'s files and deletes nothing; without them it starts over', async () => {
    const model = tinyModel();
    const out = join(tempDir('rundir-force'), 'run');
    await run({ model, train: tinyTrain({ steps: 2 }) }, out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    mkdirSync(join(out, CHECKPOINTS_DIR, 'keep'));
    writeFileSync(join(out, CHECKPOINTS_DIR, 'keep', 'x.bin'), 'mine too');
    await assert.rejects(run({ model, train: tinyTrain({ steps: 3 }), force: true }, out), {
      name: 'InputError',
      message: /run: holds files its manifest does not list \(checkpoints\/keep\/x\.bin, notes\.txt\); starting over would delete them/,
    });
    assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'mine');
    assert.equal(listCheckpoints(out).length, 1);
    assert.equal(records(out).filter((l) => (l as { type: string }).type === 'step').length, 2);
  });

  it('starts over without asking when a folder of another config trained nothing yet (a failed setup)', async () => {
    const model = tinyModel();
    const out = join(tempDir('rundir-nothing'), 'run');
    mkdirSync(out);
    writeFileSync(join(out, '.fingerprint'), '{"another":"config"}\n');
    writeFileSync(join(out, 'config.json'), '{}\n');
    writeFileSync(join(out, 'metrics.jsonl'), '');
    const r = await run({ model, train: tinyTrain({ steps: 2 }) }, out);
    assert.equal(r.manifest!.stats.steps, 2);
  });

  it('stops a diverging run at its first non-finite loss or gradient norm, keeping the last finite checkpoint as latest', async () => {
    const model = tinyModel();
    const out = join(tempDir('rundir-diverge'), 'run');
    const settings = tinyTrain({ steps: 12, lr: 1e6, clip_norm: 0, warmup: 0, checkpoint_every: 1, keep_last: 100 });
    await assert.rejects(run({ model, train: settings }, out), (e: Error) => {
      assert.equal(e.name, 'TrainingDivergedError');
      assert.match(e.message, /^training diverged at step (\d+): (loss|weight|validation loss) .*latest stays at step-\d{9} \(the last finite checkpoint\); lower train\.lr \(now 1000000\) or set train\.clip_norm \(now 0: no clipping\) and start over with --force$/);
      return true;
    });
    const steps = records(out).filter((l) => (l as { type: string }).type === 'step') as Array<{ step: number; loss: number | null; gradNorm: number | null }>;
    const last = steps.at(-1)!;
    assert.ok(last.step < 12, 'stopped early');
    const ck = readCheckpoint(out);
    assert.ok(ck.step < last.step || (last.loss !== null && last.gradNorm !== null), 'latest is before the non-finite step');
    for (const [name, a] of Object.entries(ck.params)) assert.ok(a.every(Number.isFinite), `${name} of ${ck.dir} is finite`);
  });

  it('records a dense run as dense: phase "dense" in metrics and checkpoints', async () => {
    const out = join(tempDir('rundir-dense'), 'run');
    await run({ model: tinyModel(), train: tinyTrain({ steps: 2 }) }, out);
    const steps = records(out).filter((l) => (l as { type: string }).type === 'step');
    assert.equal(steps.length, 2);
    assert.ok(steps.every((l) => (l as { phase: string }).phase === 'dense'));
    assert.equal(readCheckpoint(out).state.phase, 'dense');
  });

  it('refuses a run that cannot fit in memory before writing anything', async () => {
    const out = join(tempDir('rundir-memory'), 'run');
    await assert.rejects(run({ model: tinyModel({ vocabSize: 1e12 }), train: tinyTrain() }, out), {
      name: 'InputError',
      message: /^training needs ~[\d,.]+ TB \(weights .*\), this machine has [\d.]+ GB \(.*\); shrink the model .* --no-memory-check/,
    });
    assert.equal(existsSync(out), false);
    assert.equal(existsSync(dirname(out)) && existsSync(join(dirname(out), '.lory-lock-run')), false);
  });

  it('refuses a second writer while a live process holds the run folder, and takes over a dead one\'s lock', async () => {
    const model = tinyModel();
    const out = join(tempDir('rundir-lock'), 'run');
    const holder = spawn('sleep', ['30']);
    try {
      writeFileSync(join(dirname(out), '.lory-lock-run'), `${holder.pid}\n`);
      await assert.rejects(run({ model, train: tinyTrain({ steps: 2 }) }, out), { name: 'InputError', message: new RegExp(`another lory process \\(pid ${holder.pid}\\) is writing .*run`) });
      assert.equal(existsSync(out), false);
    } finally {
      holder.kill();
    }
    await new Promise((r) => holder.on('exit', r));
    const r = await run({ model, train: tinyTrain({ steps: 2 }) }, out);
    assert.equal(r.manifest!.stats.steps, 2);
    assert.equal(existsSync(join(dirname(out), '.lory-lock-run')), false, 'the lock is released');
  });
});
