import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../artifacts/index.js';
import { FIXTURE_TRAIN, tempDir } from '../../data/testing.js';

const lory = (...args: string[]) => spawnSync(join(PROJECT_ROOT, 'bin', 'lory'), args, { encoding: 'utf8', env: { ...process.env, LORY_OPENBLAS_CORETYPE: undefined } });

describe('lory prepare, embed and build-batches from the command line', () => {
  const root = tempDir('cli-data');

  it('runs the three stages on the fixture corpus, reports the figures, and skips them when up to date', () => {
    const train = join(root, 'train');
    const emb = join(root, 'emb');
    const batches = join(root, 'batches');
    let r = lory('prepare', FIXTURE_TRAIN, '-o', train, '--vocab-size', '512');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /documents\s+137 .*code_go 17/);
    r = lory('embed', train, '-o', emb, '--max-tokens', '14', '--chunk', '64');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /vectors\s+384-d float32, unit length/);
    r = lory('build-batches', train, '-e', emb, '-o', batches, '--seq-len', '255', '--json');
    assert.equal(r.status, 0, r.stderr);
    const stats = JSON.parse(r.stdout) as { adjacency: { sameDomain: { order: number; random: number } }; trainInstances: number };
    assert.ok(stats.adjacency.sameDomain.order > stats.adjacency.sameDomain.random, r.stdout);
    r = lory('build-batches', train, '-e', emb, '-o', batches, '--seq-len', '255');
    assert.equal(r.status, 0);
    assert.match(r.stderr, /is up to date/);
    assert.match(r.stdout, /same domain\s+\d+\.\d%\s+\d+\.\d%/);
  });

  it('stops on bad input with one line naming file and line, exit code 2', () => {
    const bad = join(root, 'bad.jsonl');
    writeFileSync(bad, '{"text": "fine"}\n{"text": 3}\n');
    const r = lory('prepare', bad, '-o', join(root, 'bad-out'));
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`error: ${bad}:2: "text" field is number, not a string`));
    const skipped = lory('prepare', bad, '-o', join(root, 'skip-out'), '--skip-bad-lines', '--vocab-size', '300');
    assert.equal(skipped.status, 0, skipped.stderr);
    assert.match(skipped.stderr, /skipped 1 bad lines/);
  });

  it('refuses a wrong artifact, a bad FAISS index string and a bad shard with exit code 2', () => {
    const train = join(root, 'train');
    let r = lory('build-batches', FIXTURE_TRAIN, '-o', join(root, 'x'), '--strategy', 'random');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /is a file; expected a token-store/);
    r = lory('build-batches', train, '-e', join(root, 'emb'), '-o', join(root, 'y'), '--index', 'Bogus99');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--index 'Bogus99': cannot build FAISS index/);
    r = lory('embed', train, '-o', join(root, 'z'), '--shard', '2/2');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--shard must be i\/n with 0 <= i < n, got '2\/2'/);
    assert.ok(readFileSync(join(train, 'manifest.json')).length > 0);
  });
});

describe('Ctrl-C during lory embed', () => {
  it('exits 130 keeping finished chunks, and the same command resumes from them', async () => {
    const { spawn } = await import('node:child_process');
    const { readdirSync } = await import('node:fs');
    const root = tempDir('cli-sigint');
    const train = join(root, 'train');
    assert.equal(lory('prepare', FIXTURE_TRAIN, '-o', train, '--vocab-size', '300').status, 0);
    const args = ['embed', train, '-o', join(root, 'emb'), '--max-tokens', '14', '--chunk', '16', '--batch-tokens', '64'];
    const child = spawn(join(PROJECT_ROOT, 'bin', 'lory'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const chunks = () => readdirSync(root).filter((n) => n.startsWith('.lory-tmp-emb-resume-')).flatMap((d) => readdirSync(join(root, d)).filter((f) => f.endsWith('.f32')));
    const started = Date.now();
    while (chunks().length === 0 && Date.now() - started < 60_000) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 130, stderr);
    assert.match(stderr, /embedding interrupted with \d+ of 137 documents saved; run the same command again to resume/);
    const saved = chunks().length;
    assert.ok(saved >= 1 && saved < 9, `${saved} chunks saved`);
    const again = lory(...args, '--log-level', 'debug');
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /from an earlier run/);
  });
});
