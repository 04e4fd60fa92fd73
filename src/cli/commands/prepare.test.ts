/**
 * `lory prepare` as a hostile user would run it: every row is a bad invocation or a damaged input,
 * with its exit code and message; after each, the output holds nothing or the previous good store.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { FIXTURE_TRAIN, tempDir, writeJsonl } from '../../data/testing.js';
import { checkRows, lory, loryAsync, mountProblem, mountTmpfs, snapshot, unmount, type Row } from './table-testing.js';

const root = tempDir('prepare-table');
const small = writeJsonl(join(root, 'small.jsonl'), [{ text: 'the cat sat on the mat' }, { text: 'a dog ran in the park' }, { text: 'birds sing at dawn' }]);
const out = join(root, 'store');
const make = (corpus: string, target: string) => lory('prepare', corpus, '-o', target, '--vocab-size', '300');

function corruptGzip(): string {
  // Long enough that the CRC, checked at the end of the stream, fails only after the reader stopped at line 2.
  const filler = Array.from({ length: 20000 }, (_, i) => `{"text": "filler line ${i}"}`).join('\n');
  const gz = gzipSync(Buffer.from(`{"text": "fine"}\n{"text": oops}\n${filler}\n`));
  gz[gz.length - 8]! ^= 0xff; // the CRC32 of the trailer
  const path = join(root, 'corrupt.jsonl.gz');
  writeFileSync(path, gz);
  return path;
}

function file(name: string, content: string | Buffer): string {
  const path = join(root, name);
  writeFileSync(path, content);
  return path;
}

describe('lory prepare refuses bad invocations and damaged input', () => {
  it('makes the good store the rows must leave untouched', () => {
    const r = make(small, out);
    assert.equal(r.status, 0, r.stderr);
  });

  const truncated = () => {
    const gz = gzipSync(readFileSync(FIXTURE_TRAIN));
    return file('truncated.jsonl.gz', gz.subarray(0, gz.length >> 1));
  };
  const corpusDir = join(root, 'corpus-with-output');
  const ro = join(root, 'ro');
  const full = join(root, 'full');
  const rows: Row[] = [
    // 1. usage errors: one line, exit 2, for every kind of mistake after the command name
    { name: '--vocab-size 0', args: ['prepare', small, '-o', out, '--vocab-size', '0'], code: 2, message: "option '--vocab-size <n>' argument '0' is invalid" },
    { name: 'an unknown flag', args: ['prepare', small, '-o', out, '--vocab', '300'], code: 2, message: "unknown option '--vocab'" },
    { name: 'no -o', args: ['prepare', small], code: 2, message: "required option '-o, --out <dir>' not specified" },
    { name: 'no input', args: ['prepare', '-o', out], code: 2, message: "missing required argument 'inputs'" },
    { name: '--max-train-mb abc', args: ['prepare', small, '-o', out, '--max-train-mb', 'abc'], code: 2, message: 'must be a positive integer' },
    { name: 'both --vocab-size and --tokenizer', args: ['prepare', small, '-o', out, '--vocab-size', '300', '--tokenizer', out], code: 2, message: 'not both' },
    { name: '--vocab-size above what the trainer learns', args: ['prepare', small, '-o', out, '--vocab-size', '30002', '--force'], code: 2, message: 'is above 30001' },
    // 2. a corrupt gzip: one error, no unhandled stream error after it
    { name: 'a gzip with bad JSON on line 2 and a damaged CRC', args: () => ['prepare', corruptGzip(), '-o', out, '--force'], code: 2, message: /corrupt\.jsonl\.gz:2: malformed JSON/ },
    { name: 'a truncated gzip', args: () => ['prepare', truncated(), '-o', out, '--force'], code: 2, message: /truncated\.jsonl\.gz:\d+: cannot read: corrupt or truncated gzip data/ },
    // 5. inputs that are not what they seem
    { name: 'bytes that are not UTF-8 in JSONL', args: () => ['prepare', file('latin1.jsonl', Buffer.from('{"text": "caf\xe9"}\n', 'latin1')), '-o', out, '--force'], code: 2, message: /latin1\.jsonl:1: not valid UTF-8 at byte offset 13 of the line/ },
    { name: 'a text file that is not UTF-8', args: () => ['prepare', file('latin1.txt', Buffer.from('caf\xe9 au lait', 'latin1')), '-o', out, '--force'], code: 2, message: /latin1\.txt: not valid UTF-8 text at byte offset 3 \(use --skip-bad-lines/ },
    { name: 'a text file with a NUL byte', args: () => ['prepare', file('nul.txt', 'ab\0cd'), '-o', out, '--force'], code: 2, message: /nul\.txt: not text: a NUL byte at byte offset 2/ },
    {
      name: 'the output inside the input folder',
      setup: () => (mkdirSync(corpusDir, { recursive: true }), copyFileSync(small, join(corpusDir, 'a.jsonl'))),
      args: () => ['prepare', corpusDir, '-o', join(corpusDir, 'store')],
      code: 2,
      message: 'write the token store outside the corpus',
    },
    { name: 'a token store given as the corpus', args: ['prepare', out, '-o', join(root, 'store2')], code: 2, message: 'is a lory token-store artifact, not a corpus' },
    // 10. messages that say what is wrong
    { name: '"text": null', args: () => ['prepare', file('null.jsonl', '{"text": null}\n'), '-o', out, '--force'], code: 2, message: /null\.jsonl:1: "text" field is null, not a string/ },
    {
      name: 'a --tokenizer that is not a tokenizer.json',
      args: () => ['prepare', small, '-o', out, '--tokenizer', file('tok.json', '{"not": "a tokenizer"}'), '--force'],
      code: 2,
      message: /tok\.json: not a tokenizer\.json the tokenizers package can load \(.*\w \w.*\)$/m,
    },
    // 3. the environment: the user's to fix, exit 2 with the real reason
    { name: 'an output path that is a file', args: () => ['prepare', small, '-o', file('existing.txt', 'x')], code: 2, message: 'exists and is a file' },
    { name: 'an output path under a file', args: () => ['prepare', small, '-o', join(file('existing.txt', 'x'), 'store')], code: 2, message: 'a part of the path is a file, not a folder' },
    {
      name: 'another process holds the output',
      setup: () => writeFileSync(join(root, '.lory-lock-store'), `${process.pid}\n`),
      cleanup: () => rmSync(join(root, '.lory-lock-store')),
      args: ['prepare', small, '-o', out, '--force'],
      code: 2,
      message: `another lory process (pid ${process.pid}) is writing ${out}`,
    },
    {
      name: 'a read-only folder',
      skip: mountProblem,
      setup: () => assert.equal(mountTmpfs(ro, 'ro,size=64k'), undefined),
      cleanup: () => unmount(ro),
      args: ['prepare', small, '-o', join(ro, 'store')],
      code: 2,
      message: 'cannot write: read-only file system (EROFS)',
    },
    {
      name: 'an output whose manifest is broken',
      setup: () => (mkdirSync(join(root, 'broken'), { recursive: true }), writeFileSync(join(root, 'broken', 'manifest.json'), '{"kind": 3}'), writeFileSync(join(root, 'broken', 'data.bin'), 'keep')),
      args: () => ['prepare', small, '-o', join(root, 'broken'), '--force'],
      code: 2,
      message: 'broken: malformed manifest ("kind" is missing or not a string); lory will not overwrite it',
    },
    // 6. files the manifest does not list are never deleted by a rebuild
    {
      name: 'a rebuild over a folder holding the user\'s own file',
      setup: () => writeFileSync(join(out, 'notes.txt'), 'mine'),
      cleanup: () => rmSync(join(out, 'notes.txt')),
      args: ['prepare', small, '-o', out, '--force'],
      code: 2,
      message: 'holds files its manifest does not list (notes.txt)',
    },
  ];
  checkRows(rows, out, it);

  it('ENOSPC: a full disk during a rebuild keeps the previous store byte for byte', { skip: mountProblem }, () => {
    assert.equal(mountTmpfs(full, 'size=96k'), undefined);
    try {
      const target = join(full, 'store');
      assert.equal(make(small, target).status, 0);
      const before = snapshot(target);
      const r = lory('prepare', FIXTURE_TRAIN, '-o', target, '--vocab-size', '300', '--force');
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /store: cannot write: no space left on device \(ENOSPC\)/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.deepEqual(snapshot(target), before);
      assert.deepEqual(snapshot(full), { ...Object.fromEntries(Object.entries(before!).map(([k, v]) => [`store/${k}`, v])) }, 'nothing else left on the full disk');
    } finally {
      unmount(full);
    }
  });
});

describe('lory prepare on inputs that are not what they seem', () => {
  it('takes over a lock left by a dead process', () => {
    writeFileSync(join(root, '.lory-lock-store'), '999999999\n');
    const r = lory('prepare', small, '-o', out, '--vocab-size', '301');
    assert.equal(r.status, 0, r.stderr);
  });

  it('lets only one of two concurrent writers build the same store; the other exits 2 or finds it up to date', async () => {
    const target = join(root, 'concurrent');
    const [a, b] = await Promise.all([loryAsync('prepare', FIXTURE_TRAIN, '-o', target, '--vocab-size', '300'), loryAsync('prepare', FIXTURE_TRAIN, '-o', target, '--vocab-size', '300')]);
    for (const r of [a, b]) {
      assert.ok(r.status === 0 || (r.status === 2 && r.stderr.includes(`is writing ${target}`)), r.stderr);
    }
    assert.ok(a.status === 0 || b.status === 0);
    assert.equal(lory('verify', target).status, 0);
  });

  it('reads symlinked files in a folder, and gzip data whatever the file is called', () => {
    const dir = join(root, 'linked');
    mkdirSync(dir);
    symlinkSync(small, join(dir, 'a.jsonl'));
    writeFileSync(join(dir, 'b.jsonl'), gzipSync(Buffer.from('{"text": "gzip data in a file named .jsonl"}\n')));
    const ok = lory('prepare', dir, '-o', join(root, 'linked-store'), '--vocab-size', '300');
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /documents\s+4\b/);
  });

  it('names the first five bad lines it skipped, and says when the vocabulary came out smaller than asked', () => {
    const lines = ['{"text": "good one here"}', ...Array.from({ length: 7 }, (_, i) => `{"bad": ${i}}`)];
    const bad = file('bad-lines.jsonl', `${lines.join('\n')}\n`);
    const r = lory('prepare', bad, '-o', join(root, 'skipped'), '--skip-bad-lines', '--vocab-size', '30001');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /skipped 7 bad lines \(--skip-bad-lines\); the first 5:/);
    assert.match(r.stderr, /bad-lines\.jsonl:6: missing "text" field/);
    assert.doesNotMatch(r.stderr, /bad-lines\.jsonl:7:/);
    assert.match(r.stderr, /the vocabulary has [\d,]+ tokens, not the 30,001 asked for/);
  });
});
