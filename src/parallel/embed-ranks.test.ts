/**
 * `mpirun -np 2 lory embed`: rank r embeds shard r/2 and rank 0 merges — the embeddings one process
 * writes, byte for byte, under the same manifest identity; the rank shards are gone afterwards, and a
 * rerun finds the output up to date without embedding again.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fingerprint, PROJECT_ROOT, readManifest } from '../artifacts/index.js';
import { prepare } from '../data/prepare.js';
import { FIXTURE_TRAIN, tempDir } from '../data/testing.js';

const LORY = join(PROJECT_ROOT, 'bin', 'lory');
const env = { ...process.env, OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', OMPI_MCA_rmaps_base_oversubscribe: '1' };

describe('lory embed under mpirun -np 2', () => {
  const root = tempDir('embed-ranks');
  const tokens = join(root, 'tokens');
  before(async () => {
    await prepare({ inputs: [FIXTURE_TRAIN], out: tokens, vocabSize: 512 });
  });

  it('writes the one-process embeddings byte for byte, removes the rank shards, and is up to date on a rerun', () => {
    const one = join(root, 'one');
    const two = join(root, 'two');
    const embed = (out: string) => ['embed', tokens, '-o', out, '--max-tokens', '24', '-q'];
    const a = spawnSync(LORY, embed(one), { encoding: 'utf8', env });
    assert.equal(a.status, 0, a.stderr);
    const b = spawnSync('mpirun', ['-np', '2', LORY, ...embed(two)], { encoding: 'utf8', env });
    assert.equal(b.status, 0, b.stderr);
    assert.ok(readFileSync(join(one, 'embeddings.bin')).equals(readFileSync(join(two, 'embeddings.bin'))), 'embeddings.bin differs');
    assert.equal(fingerprint(readManifest(two, 'embeddings', 1)), fingerprint(readManifest(one, 'embeddings', 1)));
    assert.deepEqual(readdirSync(root).filter((n) => n.includes('.rank-')), [], 'rank shards removed');
    const again = spawnSync('mpirun', ['-np', '2', LORY, 'embed', tokens, '-o', two, '--max-tokens', '24'], { encoding: 'utf8', env });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /is up to date/);
    assert.ok(!existsSync(`${two}.rank-0-of-2`), 'nothing re-embedded');
  });

  it('refuses --shard under mpirun: exit 2, one line', () => {
    const r = spawnSync('mpirun', ['-np', '2', LORY, 'embed', tokens, '-o', join(root, 'x'), '--shard', '0/2'], { encoding: 'utf8', env });
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.split('\n').filter((l) => /^(rank \d+: )?error: /.test(l));
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /under mpirun each of the 2 ranks embeds its own shard/);
  });
});
