/**
 * `mpirun -np 2 lory train` against one process, on this machine (Open MPI, 1 thread per rank):
 *   - 2 ranks × accumulation 2 = 1 rank × accumulation 2, bit for bit: every metrics line's loss,
 *     gradient norm and routing statistics, and every checkpoint's weights and AdamW moments — through
 *     the dense warm-up, the dense → Lory conversion and validation;
 *   - sharded optimizer state (ZeRO-1) = unsharded, bit for bit;
 *   - accumulation 4 (each rank sums two micro-batches before the ranks sum theirs: another order of a
 *     float32 sum) within a tolerance;
 *   - interrupted on 2 ranks (SIGUSR1 to mpirun), resumed on 2 and on 1: the straight run's files;
 *   - a rank killed with SIGKILL: the job ends non-zero within seconds, the last checkpoint intact;
 *   - bad setups: exit 2 and one line from lory.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { PROJECT_ROOT } from '../artifacts/index.js';
import { tempDir } from '../data/testing.js';
import { readCheckpoint } from '../train/checkpoint.js';
import { fixtureBatches } from '../train/testing.js';

const LORY = join(PROJECT_ROOT, 'bin', 'lory');
const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };

const pipeline = (train: string) => `
model: { vocab_size: 320, d_model: 32, n_layers: 2, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, experts: 4, ffn_impl: standard }
train: { lr: 3.0e-3, dense_warmup: 0.25, valid_batches: 3, keep_last: 20, threads: 1, ${train} }
`;

const root = tempDir('data-parallel');
let batches = '';

function config(name: string, train: string): string {
  const path = join(root, `${name}.yaml`);
  writeFileSync(path, pipeline(train));
  return path;
}

/** `lory train` on `ranks` processes (1: no mpirun); exit code and stderr. */
function trainOn(ranks: number, cfg: string, out: string): { status: number | null; stderr: string } {
  const args = ['train', batches, '-o', out, '--config', cfg, '-q'];
  const r = ranks === 1 ? spawnSync(LORY, args, { encoding: 'utf8', env }) : spawnSync('mpirun', ['-np', String(ranks), LORY, ...args], { encoding: 'utf8', env });
  return { status: r.status, stderr: r.stderr };
}

function trained(ranks: number, cfg: string, name: string): string {
  const out = join(root, name);
  const r = trainOn(ranks, cfg, out);
  assert.equal(r.status, 0, r.stderr);
  return out;
}

/** metrics.jsonl without its timing fields. */
function records(run: string): unknown[] {
  return readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { tokensPerSecond: _t, mfu: _m, stepMs: _s, allreduceMs: _a, ...rest } = JSON.parse(l) as Record<string, unknown>;
      return rest;
    });
}

const checkpointFiles = ['model.safetensors', 'optimizer.safetensors', 'state.json'];

/** Every checkpoint of `b` holds the same bytes as `a`'s. */
function sameCheckpoints(a: string, b: string, steps: number[]): void {
  for (const s of steps) {
    for (const f of checkpointFiles) {
      const file = (run: string) => join(run, 'checkpoints', `step-${String(s).padStart(9, '0')}`, f);
      assert.ok(readFileSync(file(a)).equals(readFileSync(file(b))), `step ${s} ${f} differs`);
    }
  }
}

describe('data-parallel training (mpirun -np 2)', { concurrency: false }, () => {
  before(async () => {
    assert.ok(spawnSync('mpirun', ['--version'], { env }).status === 0, 'mpirun (Open MPI) is needed: bin/setup installs it');
    batches = (await fixtureBatches()).batches;
  });

  const exact = () => config('exact', 'steps: 8, micro_batch: 2, accumulation: 2, valid_every: 4, checkpoint_every: 2');

  it('2 ranks × accumulation 2 equal 1 rank bit for bit (losses, gradient norms, routing, weights, moments)', () => {
    const cfg = exact();
    const one = trained(1, cfg, 'one');
    const two = trained(2, cfg, 'two');
    assert.deepEqual(records(two), records(one));
    sameCheckpoints(one, two, [2, 4, 6, 8]);
  });

  it('sharded optimizer state (ZeRO-1) equals unsharded bit for bit, checkpoints in the same format', () => {
    const one = join(root, 'one');
    const sharded = trained(2, config('sharded', 'steps: 8, micro_batch: 2, accumulation: 2, valid_every: 4, checkpoint_every: 2, shard_optimizer: true'), 'sharded');
    assert.deepEqual(records(sharded), records(one));
    sameCheckpoints(one, sharded, [2, 4, 6, 8]);
  });

  it('accumulation 4: within the tolerance of reordering a 4-term float32 sum', () => {
    const cfg = config('acc4', 'steps: 12, micro_batch: 1, accumulation: 4, valid_every: 6, checkpoint_every: 12');
    const a = records(trained(1, cfg, 'acc4-one')) as Array<{ type: string; loss: number; gradNorm?: number }>;
    const b = records(trained(2, cfg, 'acc4-two')) as Array<{ type: string; loss: number; gradNorm?: number }>;
    assert.equal(a.length, b.length);
    a.forEach((x, i) => {
      const y = b[i]!;
      assert.ok(Math.abs(x.loss - y.loss) <= 1e-6 * Math.abs(x.loss), `line ${i}: loss ${x.loss} vs ${y.loss}`);
      if (x.gradNorm !== undefined) assert.ok(Math.abs(x.gradNorm - y.gradNorm!) <= 1e-4 * x.gradNorm, `line ${i}: gradient norm ${x.gradNorm} vs ${y.gradNorm}`);
    });
    const wa = readCheckpoint(join(root, 'acc4-one')).params;
    const wb = readCheckpoint(join(root, 'acc4-two')).params;
    let worst = 0;
    for (const [name, x] of Object.entries(wa)) for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - wb[name]![i]!));
    assert.ok(worst <= 1e-4, `weights differ by up to ${worst}`);
  });

  it('interrupted on 2 ranks, resumed on 2 and on 1: the straight run, bit for bit', async () => {
    const cfg = config('long', 'steps: 120, micro_batch: 2, accumulation: 2, valid_every: 10, checkpoint_every: 10');
    const straight = trained(1, cfg, 'long-straight');
    const stopped = join(root, 'long-stopped');
    const child = spawn('mpirun', ['-np', '2', LORY, 'train', batches, '-o', stopped, '--config', cfg, '-q'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const metrics = join(stopped, 'metrics.jsonl');
    while (!(existsSync(metrics) && readFileSync(metrics, 'utf8').includes('"step":3,'))) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGUSR1'); // mpirun forwards it to every rank
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.notEqual(code, 0, 'the run must stop, not finish');
    assert.match(stderr, /training stopped after step \d+ of 120; checkpoint saved/);
    const at = readCheckpoint(stopped).step;
    assert.ok(at >= 3 && at < 120, `stopped at step ${at}`);
    const again = join(root, 'long-stopped-1');
    cpSync(stopped, again, { recursive: true });
    for (const [ranks, run] of [[2, stopped], [1, again]] as const) {
      const r = trainOn(ranks, cfg, run);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(records(run), records(straight), `resumed on ${ranks} rank(s)`);
      sameCheckpoints(straight, run, [120]);
    }
  });

  /** Starts a long run, waits for its third step, sends `signal` (to `target`), and returns its exit code and stderr. */
  async function stopAtStep3(name: string, command: string[], after: string[], target: (child: ReturnType<typeof spawn>) => void): Promise<{ code: number | null; stderr: string; run: string }> {
    const cfg = config(name, 'steps: 300, micro_batch: 2, accumulation: 2, valid_every: 0, checkpoint_every: 100');
    const run = join(root, name);
    const child = spawn(command[0]!, [...command.slice(1), 'train', batches, '-o', run, '--config', cfg, ...after], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const metrics = join(run, 'metrics.jsonl');
    while (!(existsSync(metrics) && readFileSync(metrics, 'utf8').includes('"step":3,'))) await new Promise((r) => setTimeout(r, 5));
    target(child);
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    return { code, stderr, run };
  }

  it('SIGTERM to every rank (as srun passes a Ctrl-C on): the ranks stop after one step, rank 0 writes one checkpoint', async () => {
    const { code, stderr, run } = await stopAtStep3('term-ranks', ['mpirun', '-np', '2', LORY], [], (child) => {
      for (const pid of spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')) process.kill(Number(pid), 'SIGTERM');
    });
    assert.notEqual(code, 0);
    assert.equal(stderr.match(/training stopped after step/g)?.length, 1, `rank 0 alone says so: ${stderr}`);
    const ck = readCheckpoint(run, { optimizer: true });
    assert.ok(ck.step >= 3 && ck.step < 300);
    assert.equal(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('step-')).length, 1, 'one checkpoint');
  });

  it('lory train --ranks 2: Ctrl-C stops every rank after the step with a checkpoint, exit 130, and names the command that resumes', async () => {
    const { code, stderr, run } = await stopAtStep3('ctrl-c', [LORY], ['--ranks', '2'], (child) => child.kill('SIGINT'));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /training stopped after step \d+ of 300; checkpoint saved in .*; run the same command again to resume: lory train .* --ranks 2/);
    const ck = readCheckpoint(run, { optimizer: true });
    assert.ok(ck.step >= 3 && ck.step < 300);
  });

  it('a rank killed with SIGKILL ends the job non-zero within seconds; the last checkpoint stays intact', async () => {
    const cfg = config('killed', 'steps: 400, micro_batch: 2, accumulation: 2, valid_every: 0, checkpoint_every: 5');
    const run = join(root, 'killed');
    const child = spawn('mpirun', ['-np', '2', LORY, 'train', batches, '-o', run, '--config', cfg, '-q'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    while (!existsSync(join(run, 'checkpoints', 'step-000000010'))) await new Promise((r) => setTimeout(r, 5));
    const ranks = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number);
    assert.equal(ranks.length, 2, 'mpirun runs the two ranks as its children');
    const killedAt = performance.now();
    process.kill(Math.max(...ranks), 'SIGKILL');
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    const seconds = (performance.now() - killedAt) / 1000;
    assert.notEqual(code, 0);
    assert.ok(seconds < 15, `the job took ${seconds.toFixed(1)} s to end`);
    assert.match(stderr, /rank 1/, 'a line names the dead rank');
    const ck = readCheckpoint(run, { optimizer: true }); // checks every tensor's hash
    assert.ok(ck.step >= 10 && ck.step < 400);
  });

  describe('bad setups: exit 2, one line from lory', () => {
    const loryLines = (stderr: string) => stderr.split('\n').filter((l) => /^(rank \d+: )?error: /.test(l));

    it('train.accumulation not a multiple of the ranks', () => {
      const out = join(root, 'acc3');
      const r = trainOn(2, config('acc3', 'steps: 2, micro_batch: 2, accumulation: 3'), out);
      assert.equal(r.status, 2, r.stderr);
      assert.deepEqual(loryLines(r.stderr), ['error: train.accumulation (3) is not a multiple of the 2 ranks: each rank runs accumulation/ranks of a step\'s micro-batches; set train.accumulation to a multiple of 2 (the global batch stays micro_batch × accumulation)']);
      assert.ok(!existsSync(out), 'nothing written');
    });

    it('ranks given different configs', () => {
      const a = config('differ-a', 'steps: 2, micro_batch: 2, accumulation: 2');
      const b = config('differ-b', 'steps: 3, micro_batch: 2, accumulation: 2');
      const out = join(root, 'differ');
      const rank = (cfg: string) => ['-np', '1', LORY, 'train', batches, '-o', out, '--config', cfg];
      const r = spawnSync('mpirun', [...rank(a), ':', ...rank(b)], { encoding: 'utf8', env });
      assert.equal(r.status, 2, r.stderr);
      const lines = loryLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^error: rank 1 of 2 was given another run than rank 0/);
      assert.ok(!existsSync(out), 'nothing written');
    });

    it('a command that does not divide its work among ranks (lory run)', () => {
      const r = spawnSync('mpirun', ['-np', '2', LORY, 'run', exact()], { encoding: 'utf8', env });
      assert.equal(r.status, 2, r.stderr);
      assert.deepEqual(loryLines(r.stderr), ['error: lory run runs in one process; under mpirun only train and embed divide their work among the 2 ranks: run the pipeline in one process and train its runs with `mpirun -np N lory train`']);
    });

    it('--ranks without mpirun on PATH', () => {
      const bin = join(root, 'path-without-mpirun');
      mkdirSync(bin, { recursive: true });
      if (!existsSync(join(bin, 'node'))) symlinkSync(process.execPath, join(bin, 'node'));
      const out = join(root, 'no-mpirun');
      const r = spawnSync(LORY, ['train', batches, '-o', out, '--config', exact(), '--ranks', '2'], { encoding: 'utf8', env: { ...env, PATH: bin } });
      assert.equal(r.status, 2, r.stderr);
      assert.deepEqual(loryLines(r.stderr).length, 1, r.stderr);
      assert.match(r.stderr, /--ranks needs mpirun \(Open MPI\), which is not on PATH/);
      assert.ok(!existsSync(out));
    });
  });
});
