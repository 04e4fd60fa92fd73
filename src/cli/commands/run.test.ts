import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FIXTURE_HELDOUT, FIXTURE_TRAIN, tempDir } from '../../data/testing.js';
import { PROJECT_ROOT } from '../../runtime/index.js';
import { readCheckpoint } from '../../train/checkpoint.js';
import { fixtureBatches } from '../../train/testing.js';
import { snapshot } from './table-testing.js';

const LORY = join(PROJECT_ROOT, 'bin', 'lory');
const lory = (...args: string[]) => spawnSync(LORY, args, { cwd: PROJECT_ROOT, encoding: 'utf8' });

// Random batching only (no embedding stage), a tiny model: the whole pipeline in a few seconds.
const pipeline = (out: string) => `
name: e2e
out: ${out}
data: { train: ${FIXTURE_TRAIN}, heldout: ${FIXTURE_HELDOUT} }
tokenizer: { vocab_size: 300 }
batches: { seq_len: 32, strategies: [random], valid_fraction: 0.05, dedup: false }
model: { vocab_size: 300, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 64, segment_length: 8 }
train: { steps: 6, micro_batch: 2, lr: 3.0e-3, valid_every: 3, threads: 1 }
tasks: { items: 6, fewshot: 2, shots: [0, 1], max_context_tokens: 60 }
runs:
  - { name: dense, batches: random }
  - { name: lory, batches: random, model: { experts: 2 }, train: { dense_warmup: 0.34 } }
`;

describe('lory run', () => {
  it('runs every stage in order, prints the validation losses side by side, then skips what is up to date; --from/--force redo a part', () => {
    const dir = tempDir('cli-run');
    const out = join(dir, 'out');
    const file = join(dir, 'p.yaml');
    writeFileSync(file, pipeline(out));
    const first = lory('run', file);
    assert.equal(first.status, 0, first.stderr);
    for (const stage of ['prepare', 'prepare-heldout', 'batches-random', 'train-dense', 'train-lory', 'eval-perplexity', 'make-tasks', 'eval-tasks', 'inspect-lory']) assert.match(first.stderr, new RegExp(`✓ ${stage} `));
    // The tasks stage scores what `lory eval tasks` scores on the same checkpoints and made tasks.
    assert.match(first.stdout, /\| checkpoint \| continuation 0-shot \| continuation 1-shot \|/, 'the task table is in the summary');
    const standalone = lory('eval', 'tasks', join(out, 'runs', 'dense'), join(out, 'runs', 'lory'), '--tasks', join(out, 'tasks'), '-k', '0,1', '--json');
    assert.equal(standalone.status, 0, standalone.stderr);
    const scores = (text: string) => (JSON.parse(text) as { results: unknown[] }).results;
    assert.deepEqual(scores(readFileSync(join(out, 'eval-tasks', 'tasks.json'), 'utf8')), scores(standalone.stdout));
    assert.match(first.stdout, /## Perplexity on .*heldout by domain/, 'the run ends with the perplexity table ...');
    assert.match(first.stdout, /report: .*experts-lory\/report\.html\n/, '... the path of the expert report ...');
    assert.ok(first.stdout.endsWith(`training curves (lory report): ${join(out, 'report', 'report.html')}\n`), '... and of the training report');
    const summary = () => (JSON.parse(readFileSync(join(out, 'report', 'summary.json'), 'utf8')) as { runs: Array<{ run: string; steps: number }> }).runs;
    assert.deepEqual(summary().map((r) => [r.run, r.steps]), [['dense', 6], ['lory', 6]]);
    assert.match(first.stdout, /dense\s+dense, 1×32, V=300\s+random\s+6\s+\d\.\d{4}\s+\d\.\d{4}/);
    assert.match(first.stdout, /lory\s+Lory 2E, 1×32, V=300\s+random\s+6\s+\d\.\d{4}\s+\d\.\d{4}/);
    assert.equal(readCheckpoint(join(out, 'runs', 'lory')).model.experts, 2);
    assert.equal(readCheckpoint(join(out, 'runs', 'lory')).state.phase, 'moe');
    const evaluated = JSON.parse(readFileSync(join(out, 'eval', 'perplexity.json'), 'utf8')) as { results: Array<{ checkpoint: { experts: number; moe?: string; phase: string } }> };
    const checkpoints = evaluated.results.map((r) => r.checkpoint);
    assert.deepEqual(checkpoints.filter((c) => c.experts === 1).map((c) => [c.moe, c.phase]), [[undefined, 'dense']], 'the dense run is reported dense, with no MoE kind');
    assert.ok(checkpoints.some((c) => c.experts === 2 && c.moe === 'lory' && c.phase === 'moe'));
    const resolved = JSON.parse(readFileSync(join(out, 'pipeline.resolved.json'), 'utf8'));
    assert.deepEqual([resolved.train.beta2, resolved.runs[1].train.dense_warmup, resolved.runs[1].model.experts], [0.95, 0.34, 2], 'defaults filled in, per-run overrides applied');

    const again = lory('run', file);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /✓/, 'nothing reruns');
    assert.match(again.stderr, /· train-lory\s+.*\(up to date\)/);
    const metrics = readFileSync(join(out, 'runs', 'dense', 'metrics.jsonl'), 'utf8');

    const forced = lory('run', file, '--from', 'train-lory', '--force', '--json');
    assert.equal(forced.status, 0, forced.stderr);
    const stages = forced.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { stage?: string; skipped?: boolean })
      .filter((l) => l.stage);
    assert.deepEqual(stages.map((s) => [s.stage, s.skipped]), [['train-lory', false], ['eval-perplexity', false], ['make-tasks', false], ['eval-tasks', false], ['inspect-lory', false]]);
    assert.equal(JSON.parse(forced.stdout.trim().split('\n').at(-1)!).report, join(out, 'report', 'report.html'));
    assert.deepEqual(summary().map((r) => r.run), ['dense', 'lory'], 'retraining one run still reports both');
    assert.equal(readFileSync(join(out, 'runs', 'dense', 'metrics.jsonl'), 'utf8'), metrics, 'the dense run is untouched');

    // kill -9 between a checkpoint's rename and its pointer write: the stages read the newest intact one, and say so.
    rmSync(join(out, 'runs', 'lory', 'checkpoints', 'latest'));
    const fallback = lory('run', file, '--from', 'eval-perplexity', '--until', 'eval-perplexity', '--force');
    assert.equal(fallback.status, 0, fallback.stderr);
    assert.match(fallback.stderr, /warning: .*latest.*; using .*runs\/lory\/checkpoints\/step-/);
  });

  it('finds a run up to date named through ./p.yaml, a copy, or from another working directory with equivalent paths; lory train on ../ paths too', () => {
    const dir = tempDir('cli-run-paths');
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    const yaml = (out: string) => `
out: ${out}
data: { train: ${FIXTURE_TRAIN} }
tokenizer: { vocab_size: 300 }
batches: { seq_len: 32, strategies: [random], valid_fraction: 0.05, dedup: false }
model: { vocab_size: 300, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 32 }
train: { steps: 3, micro_batch: 2, valid_every: 0, threads: 1 }
runs: [{ name: dense, batches: random }]
`;
    writeFileSync(join(dir, 'p.yaml'), yaml('work'));
    copyFileSync(join(dir, 'p.yaml'), join(dir, 'q.yaml'));
    writeFileSync(join(sub, 'p.yaml'), yaml('../work'));
    const at = (cwd: string, ...args: string[]) => spawnSync(LORY, args, { cwd, encoding: 'utf8' });
    const upToDate = (r: ReturnType<typeof at>, what: string) => {
      assert.equal(r.status, 0, `${what}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /✓/, `${what}: nothing reruns`);
      assert.match(r.stderr, /· train-dense\s+.*\(up to date\)/, what);
    };
    const first = at(dir, 'run', 'p.yaml');
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, /✓ train-dense /);
    upToDate(at(dir, 'run', './p.yaml'), './p.yaml');
    upToDate(at(dir, 'run', 'q.yaml'), 'a copy, q.yaml');
    upToDate(at(sub, 'run', 'p.yaml'), 'from sub/ with out: ../work');
    const train = at(sub, 'train', '../work/batches-random', '-o', '../work/runs/dense', '-c', 'p.yaml');
    assert.equal(train.status, 0, train.stderr);
    assert.match(train.stderr, /is up to date/, 'lory train from sub/ on ../work: the run `lory run` made');
    for (const args of [
      ['prepare', FIXTURE_TRAIN, '-o', '../work/tokens', '--vocab-size', '300'],
      ['build-batches', '../work/tokens', '-o', '../work/batches-random', '--strategy', 'random', '--seq-len', '32', '--valid-fraction', '0.05', '--no-dedup'],
    ]) {
      const r = at(sub, ...args);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /is up to date/, `lory ${args[0]} from sub/: the artifact \`lory run\` made`);
    }

    const tokens = join(dir, 'work', 'tokens');
    renameSync(tokens, `${tokens}-moved`);
    const runBefore = snapshot(join(dir, 'work', 'runs', 'dense'));
    const lost = at(sub, 'train', '../work/batches-random', '-o', '../work/runs/dense', '-c', 'p.yaml');
    assert.equal(lost.status, 2, lost.stderr);
    assert.equal(lost.stderr.trim(), `error: ../work/batches-random: the token store it was built from is not found at ${tokens} (its manifest records it as ../tokens, relative to the batches); put it back there or rebuild the batches`);
    assert.deepEqual(snapshot(join(dir, 'work', 'runs', 'dense')), runBefore, 'the run is untouched');
    renameSync(`${tokens}-moved`, tokens);

    // Batches made before paths were recorded relative to the artifact name the token store as typed, relative to where they were made.
    const manifestPath = join(dir, 'work', 'batches-random', 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { inputs: Array<{ role: string; path: string }> };
    assert.deepEqual(manifest.inputs.map((i) => [i.role, i.path]), [['tokens', '../tokens']], 'recorded relative to the batches');
    manifest.inputs[0]!.path = 'work/tokens';
    writeFileSync(manifestPath, JSON.stringify(manifest));
    upToDate(at(dir, 'run', 'p.yaml'), 'an older manifest, from where it was made');

    const phases = readFileSync(join(dir, 'work', 'runs', 'dense', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; phase?: string })
      .filter((l) => l.type === 'step')
      .map((l) => l.phase);
    assert.deepEqual(phases, ['dense', 'dense', 'dense'], 'a dense run is dense at every step');
    assert.equal(readCheckpoint(join(dir, 'work', 'runs', 'dense')).state.phase, 'dense');
  });

  it('lists stages with --list and exits 2 naming an unknown stage', () => {
    const dir = tempDir('cli-run-list');
    const file = join(dir, 'p.yaml');
    writeFileSync(file, pipeline(join(dir, 'out')));
    const list = lory('run', file, '--list');
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(
      list.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]),
      ['prepare', 'prepare-heldout', 'batches-random', 'train-dense', 'train-lory', 'eval-perplexity', 'make-tasks', 'eval-tasks', 'inspect-lory'],
    );
    assert.equal(existsSync(join(dir, 'out')), false, '--list runs nothing');
    const bad = lory('run', file, '--from', 'evaluate');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^error: no stage 'evaluate' in this pipeline; its stages: prepare, /);
  });
});

/** The step of the checkpoint `latest` names, or 0 when there is none yet (read as a pointer, not trusted further). */
function latestStep(run: string): number {
  try {
    return Number(/step-(\d+)/.exec(readFileSync(join(run, 'checkpoints', 'latest'), 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Start `lory train`, wait (polling the run folder) until `latest` names step ≥ `step`, wait `extraMs` more, SIGKILL it. */
function killAfterCheckpoint(args: string[], run: string, step: number, extraMs: number): Promise<{ killed: boolean; seen: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(LORY, args, { cwd: PROJECT_ROOT, stdio: 'ignore' });
    let seen = 0;
    let killed = false;
    const poll = setInterval(() => {
      seen = Math.max(seen, latestStep(run));
      if (seen >= step && !killed) {
        clearInterval(poll);
        setTimeout(() => (killed = child.kill('SIGKILL')), extraMs);
      }
    }, 5);
    child.on('error', reject);
    child.on('close', () => {
      clearInterval(poll);
      resolve({ killed, seen });
    });
  });
}

describe('kill -9 during training', () => {
  it('never corrupts the last good checkpoint: killed after checkpoints at several points, the resumed run equals a straight one', async () => {
    const { batches } = await fixtureBatches();
    const dir = tempDir('cli-kill');
    const config = join(dir, 'p.yaml');
    // Checkpoints every 3 steps: the kills land between checkpoints (metrics lines past the checkpoint
    // to drop on resume) and, with a few ms more, inside a checkpoint write; the conversion to 2 experts
    // comes after step 3, so kills hit both phases.
    writeFileSync(
      config,
      'model: { vocab_size: 320, d_model: 32, n_layers: 1, n_heads: 2, d_ff: 64, context_length: 32, segment_length: 8, experts: 2 }\n' +
        'train: { steps: 30, micro_batch: 2, dense_warmup: 0.1, valid_every: 0, checkpoint_every: 3, keep_last: 2, threads: 1 }\n',
    );
    const run = join(dir, 'run');
    const args = ['train', batches, '-o', run, '--config', config];
    let last = 0;
    for (const [step, extraMs] of [[3, 0], [9, 15], [18, 40]] as const) {
      const k = await killAfterCheckpoint(args, run, step, extraMs);
      assert.ok(k.killed, `the run was killed after its checkpoint at step ${step} (it got to ${k.seen} and exited first)`);
      const ck = readCheckpoint(run, { optimizer: true }); // whole, hashes match
      assert.ok(ck.step >= Math.max(step, last), `after the kill latest is step ${ck.step}, but step ${step} (and before it ${last}) was already checkpointed`);
      last = ck.step;
    }
    assert.ok(last < 30, 'the last kill landed before the end');
    const done = lory(...args);
    assert.equal(done.status, 0, done.stderr);
    assert.equal(readCheckpoint(run).step, 30);
    const stepLines = (r: string) =>
      readFileSync(join(r, 'metrics.jsonl'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; step: number; loss: number })
        .filter((l) => l.type === 'step');
    assert.deepEqual(stepLines(run).map((l) => l.step), Array.from({ length: 30 }, (_, i) => i + 1), 'one metrics line per step, none torn or repeated');
    assert.deepEqual(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.') || n.includes('.tmp-')), [], 'no half-written leftovers');
    const straight = join(dir, 'straight');
    const once = lory('train', batches, '-o', straight, '--config', config);
    assert.equal(once.status, 0, once.stderr);
    assert.deepEqual(stepLines(run).map((l) => l.loss), stepLines(straight).map((l) => l.loss), 'the same losses as a run never killed');
    assert.deepEqual(readCheckpoint(run).params, readCheckpoint(straight).params, 'the same weights as a run never killed');
  });
});
