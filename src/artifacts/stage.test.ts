import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { artifactInput, canonicalJson, inputPath, readManifest, runStage, type StageSpec } from './index.js';

function spec(out: string, overrides: Partial<StageSpec<{ n: number }>> = {}): StageSpec<{ n: number }> {
  return {
    out,
    kind: 'test-thing',
    formatVersion: 1,
    inputs: [{ role: 'source', path: 'x', hash: 'abc' }],
    params: { a: 1 },
    build: async (dir) => {
      writeFileSync(join(dir, 'data.txt'), 'hello');
      return { n: 5 };
    },
    ...overrides,
  };
}

describe('artifact stages', () => {
  const root = mkdtempSync(join(tmpdir(), 'lory-artifacts-'));

  it('writes files and a manifest with kind, version, inputs, params, file hashes and tool version', async () => {
    const out = join(root, 'a');
    const result = await runStage(spec(out));
    assert.equal(result.skipped, false);
    const m = readManifest<{ n: number }>(out, 'test-thing', 1);
    assert.equal(m.stats.n, 5);
    assert.deepEqual(m.params, { a: 1 });
    assert.equal(m.inputs[0]!.hash, 'abc');
    assert.equal(m.files['data.txt']!.bytes, 5);
    assert.equal(m.files['data.txt']!.sha256, '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    assert.match(m.tool.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.lory-tmp')), [], 'no temporary directory is left');
  });

  it('skips a stage whose manifest matches, and redoes it with force or changed params', async () => {
    const out = join(root, 'b');
    let builds = 0;
    const counting = (o: Partial<StageSpec<{ n: number }>> = {}) => spec(out, { build: async (d) => (builds++, writeFileSync(join(d, 'f'), 'x'), { n: builds }), ...o });
    await runStage(counting());
    assert.equal((await runStage(counting())).skipped, true);
    assert.equal(builds, 1);
    await runStage(counting({ force: true }));
    assert.equal(builds, 2);
    await runStage(counting({ params: { a: 2 } }));
    assert.equal(builds, 3);
    await runStage(counting({ inputs: [{ role: 'source', path: 'x', hash: 'changed' }] }));
    assert.equal(builds, 4);
  });

  it('never removes another output’s temporary or resume directories', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lory-stage-others-'));
    const spec = (out: string) => ({ out: join(root, out), kind: 'x', formatVersion: 1, inputs: [], params: {}, resumable: true });
    await runStage({
      ...spec('emb-b'),
      build: async (dir: string) => {
        writeFileSync(join(dir, 'chunk-0'), 'done');
        throw new Error('interrupted');
      },
    } as unknown as StageSpec<unknown>).catch(() => undefined);
    const resume = readdirSync(root).find((e) => e.startsWith('.lory-tmp-emb-b-resume-'));
    assert.ok(resume, 'the interrupted run left its resume directory');
    await runStage({ ...spec('emb'), resumable: false, build: async () => ({}) } as unknown as StageSpec<unknown>);
    assert.ok(existsSync(join(root, resume!, 'chunk-0')), 'a run of emb kept emb-b’s finished chunk');
  });

  it('redoes a stage whose files were damaged', async () => {
    const out = join(root, 'c');
    await runStage(spec(out));
    writeFileSync(join(out, 'data.txt'), 'hell');
    assert.equal((await runStage(spec(out))).skipped, false);
    assert.equal(readFileSync(join(out, 'data.txt'), 'utf8'), 'hello');
  });

  it('leaves the previous artifact untouched and no temp directory when the build fails', async () => {
    const out = join(root, 'd');
    await runStage(spec(out));
    await assert.rejects(
      runStage(spec(out, { force: true, build: async (d) => (writeFileSync(join(d, 'data.txt'), 'half'), Promise.reject(new Error('boom'))) })),
      /boom/,
    );
    assert.equal(readFileSync(join(out, 'data.txt'), 'utf8'), 'hello');
    assert.deepEqual(readdirSync(root).filter((n) => n.startsWith('.lory-tmp')), []);
  });

  it('keeps the work directory of a failed resumable stage and hands it to the next identical run', async () => {
    const out = join(root, 'e');
    let seen: string[] = [];
    await assert.rejects(
      runStage(spec(out, { resumable: true, build: async (d) => (writeFileSync(join(d, 'chunk-0'), 'done'), Promise.reject(new Error('stop'))) })),
    );
    assert.equal(existsSync(out), false);
    await runStage(spec(out, { resumable: true, build: async (d) => ((seen = readdirSync(d)), { n: 1 }) }));
    assert.deepEqual(seen, ['chunk-0']);
  });

  it('refuses an artifact of the wrong kind or format version with a clear message', async () => {
    const out = join(root, 'f');
    await runStage(spec(out));
    assert.throws(() => readManifest(out, 'embeddings', 1), /f: is a test-thing, but an embeddings \(made by `lory embed`\) is needed here/);
    assert.throws(() => readManifest(out, 'test-thing', 2), /format version 1 is not supported by this lory \(it reads version 2\)/);
    assert.throws(() => readManifest(join(root, 'missing'), 'test-thing', 1), /missing: not found/);
    mkdirSync(join(root, 'plain'));
    assert.throws(() => readManifest(join(root, 'plain'), 'test-thing', 1), /not a lory artifact \(no manifest.json\)/);
  });

  it('refuses to overwrite a folder that is not a lory artifact, or one of another kind', async () => {
    const mine = join(root, 'user-folder');
    mkdirSync(mine);
    writeFileSync(join(mine, 'precious.txt'), 'keep me');
    await assert.rejects(runStage(spec(mine)), /not a lory artifact; lory will not overwrite it/);
    const other = join(root, 'g');
    await runStage(spec(other));
    await assert.rejects(runStage(spec(other, { kind: 'other-thing', force: true })), /holds a test-thing, not an other-thing/);
  });

  it('records an artifact input by its content hash, which is the same for equal content made twice', async () => {
    const one = (await runStage(spec(join(root, 'h1')))).manifest;
    const two = (await runStage(spec(join(root, 'h2')))).manifest;
    assert.equal(artifactInput('x', 'h1', one).hash, two.contentHash);
    assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), '{"a":[{"c":3,"d":2}],"b":1}');
  });

  it('records input paths relative to the artifact: they resolve from any working directory, and the stage stays up to date', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-stage-paths-'));
    mkdirSync(join(dir, 'corpus'));
    mkdirSync(join(dir, 'elsewhere'));
    const from = async (cwd: string, input: string, out: string) => {
      const before = process.cwd();
      process.chdir(cwd);
      try {
        return await runStage(spec(out, { inputs: [{ role: 'source', path: input, hash: 'abc' }] }));
      } finally {
        process.chdir(before);
      }
    };
    const made = await from(dir, 'corpus', join('work', 'a'));
    assert.equal(made.skipped, false);
    const recorded = readManifest(join(dir, 'work', 'a'), 'test-thing', 1).inputs[0]!;
    assert.equal(recorded.path, join('..', '..', 'corpus'), 'relative to work/a, not to where it ran');
    const before = process.cwd();
    process.chdir(join(dir, 'elsewhere'));
    try {
      assert.equal(inputPath(join('..', 'work', 'a'), recorded), join(dir, 'corpus'), 'found from another working directory');
    } finally {
      process.chdir(before);
    }
    assert.equal((await from(join(dir, 'elsewhere'), join('..', 'corpus'), join('..', 'work', 'a'))).skipped, true, 'the same inputs named from elsewhere: up to date');
    assert.equal((await from(dir, join(dir, 'corpus'), join(dir, 'work', 'a'))).skipped, true, 'and named by absolute paths');
  });

  it('reads an input path of an older manifest (relative to where it ran) as before when the artifact-relative one is not there', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-stage-legacy-'));
    mkdirSync(join(dir, 'tokens'));
    const before = process.cwd();
    process.chdir(dir);
    try {
      assert.equal(inputPath(join(dir, 'work', 'batches'), { path: 'tokens' }), join(dir, 'tokens'), 'work/batches/tokens is not there: the cwd-relative one');
      mkdirSync(join(dir, 'work', 'batches', 'tokens'), { recursive: true });
      assert.equal(inputPath(join(dir, 'work', 'batches'), { path: 'tokens' }), join(dir, 'work', 'batches', 'tokens'), 'the artifact-relative one comes first');
      assert.equal(inputPath(join(dir, 'work', 'batches'), { path: 'gone' }), join(dir, 'work', 'batches', 'gone'), 'neither there: the artifact-relative one, for the message');
    } finally {
      process.chdir(before);
    }
  });

  it('removes resume directories of other params once the output is rebuilt, and all of them on --force', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-stage-resume-'));
    const out = join(dir, 'emb');
    const failing = (a: number) => spec(out, { params: { a }, resumable: true, build: async (d) => (writeFileSync(join(d, 'chunk-0'), 'x'), Promise.reject(new Error('stop'))) });
    await assert.rejects(runStage(failing(1)));
    await assert.rejects(runStage(failing(2)));
    assert.equal(readdirSync(dir).filter((n) => n.startsWith('.lory-tmp-emb-resume-')).length, 2);
    await runStage(spec(out, { params: { a: 3 }, resumable: true }));
    assert.deepEqual(readdirSync(dir), ['emb'], 'a successful run leaves no resume directory of this output');
    await assert.rejects(runStage(failing(4)));
    await assert.rejects(runStage(spec(out, { params: { a: 5 }, resumable: true, force: true, build: async () => Promise.reject(new Error('before any chunk')) })));
    assert.deepEqual(readdirSync(dir), ['emb'], '--force dropped the old resume directory, and a run that failed before finishing anything left none');
  });

  it('refuses a second writer of the same output while the first is building', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lory-stage-lock-'));
    const out = join(dir, 'a');
    let release!: () => void;
    const slow = runStage(spec(out, { build: async (d) => (await new Promise<void>((r) => (release = r)), writeFileSync(join(d, 'x'), 'first'), { n: 1 }) }));
    await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(runStage(spec(out, { params: { a: 2 } })), { name: 'InputError', message: new RegExp(`another lory process \\(pid ${process.pid}\\) is writing ${out}`) });
    release();
    await slow;
    assert.equal(readFileSync(join(out, 'x'), 'utf8'), 'first');
    assert.deepEqual(readdirSync(dir), ['a'], 'the lock is released');
  });

  it('refuses to rebuild over files its manifest does not list, and keeps them', async () => {
    const out = join(root, 'listed');
    await runStage(spec(out));
    mkdirSync(join(out, 'nested'));
    writeFileSync(join(out, 'nested', 'manifest.json'), '{}');
    await assert.rejects(runStage(spec(out, { force: true })), /holds files its manifest does not list \(nested\/manifest\.json\)/);
    assert.ok(existsSync(join(out, 'nested', 'manifest.json')));
  });
});
