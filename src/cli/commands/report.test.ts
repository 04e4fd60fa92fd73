/**
 * `lory report` from the command line, on real runs (src/report/testing.ts): the summary equals the
 * run manifests and metrics.jsonl, bad and torn metrics draw with a marked gap or stop with one line
 * and exit 2, every mistaken argument is one line and exit 2 with the last good report untouched, and
 * --watch redraws a run as it grows and stops when it finishes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../../data/testing.js';
import { PROJECT_ROOT } from '../../runtime/index.js';
import { trainedRuns } from '../../report/testing.js';
import { checkRows, lory, type Row } from './table-testing.js';

type Line = Record<string, unknown> & { type: string; step: number };
const metricsOf = (run: string): Line[] =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);
const statsOf = (run: string) => (JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8')) as { stats: Record<string, number | null> }).stats;

/** A copy of a run folder without its checkpoints (the report reads none). */
function copyRun(from: string, to: string, keepManifest = true): string {
  mkdirSync(to, { recursive: true });
  for (const f of ['metrics.jsonl', 'config.json', ...(keepManifest ? ['manifest.json'] : [])]) cpSync(join(from, f), join(to, f));
  return to;
}

describe('lory report', async () => {
  const runs = await trainedRuns();
  const root = tempDir('report-cli');

  it('prints the summary as JSON with the numbers of the run manifests and metrics.jsonl', () => {
    const r = lory('report', runs.dense, runs.lory, '-o', join(root, 'json'), '--json');
    assert.equal(r.status, 0, r.stderr);
    const table = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(table.map((s) => [s.run, s.state]), [['dense', 'finished'], ['lory', 'finished']]);
    for (const [i, run] of [runs.dense, runs.lory].entries()) {
      const s = table[i]!;
      const stats = statsOf(run);
      for (const k of ['steps', 'tokens', 'finalLoss', 'validLoss', 'convertedAt', 'medianTokensPerSecond', 'medianMfu']) assert.equal(s[k], stats[k], `${s.run}: ${k}`);
      // Worked out here from the lines themselves, independently of the report's code.
      const lines = metricsOf(run);
      const valid = lines.filter((l) => l.type === 'valid');
      const steps = lines.filter((l) => l.type === 'step');
      assert.equal(s.lowestValidLoss, Math.min(...valid.map((v) => v.loss as number)));
      assert.equal(s.clippedSteps, steps.filter((l) => (l.gradNorm as number) > 0.5).length);
      assert.ok((s.clippedSteps as number) > 0, 'clip_norm 0.5 bites in these runs');
      assert.equal(s.badSteps, 0);
      assert.ok(Math.abs((s.stepSeconds as number) - steps.reduce((t, l) => t + (l.stepMs as number), 0) / 1000) < 1e-9);
    }
    assert.equal(table[1]!.convertedAt, 6, 'dense_warmup 0.25 of 24 steps');
    assert.equal(table[0]!.convertedAt, null);
  });

  it('writes the report to <out>/report for a pipeline\'s runs by default, with every figure as SVG and PNG', () => {
    const r = lory('report', runs.dense, runs.lory);
    assert.equal(r.status, 0, r.stderr);
    const dir = join(runs.root, 'report');
    assert.match(r.stdout, new RegExp(`report: ${join(dir, 'report.html')}`));
    for (const f of ['loss', 'valid-loss', 'lr', 'grad-norm', 'throughput', 'mfu', 'routing-entropy', 'routing-utilisation', 'routing-balance']) {
      assert.match(readFileSync(join(dir, `${f}.svg`), 'utf8'), /^<svg/, f);
      assert.deepEqual([...readFileSync(join(dir, `${f}.png`)).subarray(1, 4)], [...Buffer.from('PNG')], f);
    }
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { kind: string; files: Record<string, unknown> };
    assert.equal(manifest.kind, 'training-report');
    assert.ok(manifest.files['report.html'] && manifest.files['summary.json']);
  });

  it('draws a diverged run (null losses) with its bad step marked, and says it diverged', () => {
    const out = join(root, 'wild');
    const r = lory('report', runs.dense, runs.wild, '-o', out, '--x', 'steps');
    assert.equal(r.status, 0, r.stderr);
    const lastStep = metricsOf(runs.wild).filter((l) => l.type === 'step').at(-1)!;
    assert.equal(lastStep.loss, null, 'the trainer logged the NaN loss as null');
    assert.match(r.stdout, new RegExp(`wild\\s+diverged at step ${lastStep.step}`));
    assert.match(readFileSync(join(out, 'loss.svg'), 'utf8'), new RegExp(`wild \\(diverged\\): loss not finite at step ${lastStep.step}`));
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /wild: 1 bad step \(non-finite loss or unreadable lines\), marked red/);
  });

  it('draws a run whose metrics.jsonl has a torn last line and an unreadable line, marking the gap and warning', () => {
    const run = copyRun(runs.lory, join(root, 'torn', 'lory'), false);
    const text = readFileSync(join(run, 'metrics.jsonl'), 'utf8').split('\n');
    const at = text.findIndex((l) => l.includes('"step":15,'));
    text[at] = text[at]!.slice(0, 40); // a line cut in the middle
    writeFileSync(join(run, 'metrics.jsonl'), `${text.join('\n')}{"type":"step","step":25,"pha`);
    const out = join(root, 'torn-report');
    const r = lory('report', run, '-o', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`warning: ${run}/metrics.jsonl: 1 unreadable line skipped \\(line ${at + 1}\\)`));
    assert.match(r.stderr, /the last line is incomplete/);
    assert.match(r.stdout, /lory\s+stopped at step 24 of 24/);
    assert.match(readFileSync(join(out, 'loss.svg'), 'utf8'), /lory \(stopped\): unreadable or missing lines at step 15/);
  });

  // A good report first: every row below must leave it byte for byte as it is.
  const out = join(root, 'good');
  const aFile = join(root, 'a-file');
  const notRun = join(root, 'not-a-run');
  const pipelineOut = join(root, 'pipeline-out');
  const empty = join(root, 'empty', 'run');
  const garbage = join(root, 'garbage', 'run');
  const theirs = join(root, 'theirs');
  it('writes the report the rows then try to damage', () => {
    writeFileSync(aFile, 'not a folder');
    mkdirSync(notRun, { recursive: true });
    mkdirSync(join(pipelineOut, 'runs'), { recursive: true });
    copyRun(runs.dense, empty, false);
    writeFileSync(join(empty, 'metrics.jsonl'), '');
    copyRun(runs.dense, garbage, false);
    writeFileSync(join(garbage, 'metrics.jsonl'), 'PK\u0003\u0004 not json\nnor this\n');
    mkdirSync(theirs, { recursive: true });
    writeFileSync(join(theirs, 'notes.txt'), 'mine');
    const r = lory('report', runs.dense, runs.lory, '-o', out);
    assert.equal(r.status, 0, r.stderr);
  });
  const rows: Row[] = [
    { name: 'a run that does not exist', args: ['report', join(root, 'nope'), '-o', out], code: 2, message: `${join(root, 'nope')}: not found; expected a training run folder (made by lory train or lory run)` },
    { name: 'a file', args: ['report', aFile, '-o', out], code: 2, message: `${aFile}: is a file; expected a training run folder` },
    { name: 'metrics.jsonl itself', args: ['report', join(runs.dense, 'metrics.jsonl'), '-o', out], code: 2, message: `is a file; expected a training run folder (made by lory train or lory run) — give its folder, ${runs.dense}` },
    { name: 'a folder that is not a run', args: ['report', notRun, '-o', out], code: 2, message: `${notRun}: not a training run (no metrics.jsonl)` },
    { name: "a pipeline's output folder", args: ['report', pipelineOut, '-o', out], code: 2, message: `it holds runs/ — give the runs in it, e.g. ${join(pipelineOut, 'runs', '*')}` },
    { name: 'a checkpoint', args: ['report', join(runs.lory, 'checkpoints', 'step-000000024'), '-o', out], code: 2, message: `is a checkpoint, not a training run; give the run folder that holds it (${runs.lory})` },
    { name: 'another artifact', args: ['report', join(root, 'good'), '-o', join(root, 'other')], code: 2, message: `${join(root, 'good')}: is a training-report (made by \`lory report\`), not a training run` },
    { name: 'an empty metrics.jsonl', args: ['report', empty, '-o', out], code: 2, message: `nothing to draw: ${empty}/metrics.jsonl holds no training step yet` },
    { name: 'a metrics.jsonl of garbage', args: ['report', garbage, '-o', out], code: 2, message: `nothing to draw: ${garbage}/metrics.jsonl has no readable step line (2 unreadable lines skipped (line 1, 2))` },
    { name: 'a run named twice', args: ['report', runs.dense, `${runs.dense}/`, '-o', out], code: 2, message: `${runs.dense}/: named twice; give each run once` },
    { name: '-o inside a run folder', args: ['report', runs.dense, '-o', join(runs.dense, 'report')], code: 2, message: `-o ${join(runs.dense, 'report')}: inside the run folder ${runs.dense}; choose a folder outside it` },
    { name: '-o a file', args: ['report', runs.dense, '-o', aFile], code: 2, message: `${aFile}: exists and is a file; choose another output path` },
    { name: "-o the user's folder", args: ['report', runs.dense, '-o', theirs], code: 2, message: `${theirs}: exists and is not a lory artifact; lory will not overwrite it` },
    { name: 'another process writes the report', setup: () => writeFileSync(join(root, '.lory-lock-good'), `${process.pid}\n`), cleanup: () => rmSync(join(root, '.lory-lock-good')), args: ['report', runs.dense, '-o', out], code: 2, message: `another lory process (pid ${process.pid}) is writing ${out}` },
    { name: 'a bad --x', args: ['report', runs.dense, '-o', out, '--x', 'epochs'], code: 2, message: "option '--x <axis>' argument 'epochs' is invalid" },
    { name: 'no run', args: ['report', '-o', out], code: 2, message: "missing required argument 'run'" },
  ];
  checkRows(rows, out, it);

  it('--watch redraws a run while it trains (the page reloads itself) and stops when it has finished', async () => {
    // A run "in training": its lock holds a live pid (this test's), its lines arrive as the trainer writes them.
    const run = copyRun(runs.lory, join(root, 'live', 'runs', 'lory'), false);
    const lines = readFileSync(join(runs.lory, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean);
    writeFileSync(join(run, 'metrics.jsonl'), `${lines.slice(0, 10).join('\n')}\n`);
    const lock = join(root, 'live', 'runs', '.lory-lock-lory');
    writeFileSync(lock, `${process.pid}\n`);
    const out = join(root, 'live', 'report');
    const child = spawn(join(PROJECT_ROOT, 'bin', 'lory'), ['report', run, '--watch', '--interval', '1', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const summary = () => (existsSync(join(out, 'summary.json')) ? (JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as { runs: Array<{ steps: number; state: string }> }).runs[0]! : undefined);
    const until = async (what: string, ok: () => boolean) => {
      for (let i = 0; i < 600 && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(ok(), `timed out waiting for ${what}`);
    };
    try {
      await until('the first page', () => summary()?.steps === 9);
      const html = readFileSync(join(out, 'report.html'), 'utf8');
      assert.match(html, /<meta http-equiv="refresh" content="1">/);
      assert.match(html, new RegExp(`Still training: lory \\(pid ${process.pid}, step 9 of 24\\)`));
      appendFileSync(join(run, 'metrics.jsonl'), `${lines.slice(10).join('\n')}\n`);
      await until('the redrawn page', () => summary()?.steps === 24);
      cpSync(join(runs.lory, 'manifest.json'), join(run, 'manifest.json'));
      rmSync(lock);
      assert.equal(await exited, 0);
      assert.equal(summary()!.state, 'finished');
      assert.doesNotMatch(readFileSync(join(out, 'report.html'), 'utf8'), /http-equiv="refresh"/, 'the last page no longer reloads');
      assert.equal((JSON.parse(stdout) as Array<{ steps: number }>)[0]!.steps, 24);
    } finally {
      child.kill();
      rmSync(lock, { force: true });
    }
  });
});
