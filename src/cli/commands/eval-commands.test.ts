import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { PROJECT_ROOT } from '../../artifacts/index.js';
import { tempDir } from '../../data/testing.js';
import { byteTokenizer, heldOutStore, tinyCheckpoint, tinyModel } from '../../eval/testing.js';
import { INSPECT_DOCS } from '../../inspect/testing.js';

const lory = (args: string[], input?: string | Buffer) => spawnSync(join(PROJECT_ROOT, 'bin', 'lory'), args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });

/** A user mistake: exit 2 and exactly one line on stderr matching `re`. */
function userError(r: ReturnType<typeof lory>, re: RegExp) {
  assert.equal(r.status, 2, `exit 2 expected; stderr: ${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0]!, re);
}

describe('lory eval perplexity, inspect-experts and generate from the command line', async () => {
  const root = tempDir('cli-eval');
  const tok = byteTokenizer(root);
  const store = await heldOutStore(INSPECT_DOCS, tok);
  const lory3 = await tinyCheckpoint(tinyModel(), tok, 1);
  const dense = await tinyCheckpoint(tinyModel({ experts: 1 }), tok, 2);

  it('prints the perplexity table (Markdown, JSON, --out), the expert summary with the report path, and a streamed continuation', () => {
    let r = lory(['eval', 'perplexity', dense.run, lory3.run, '--data', store]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /side by side/);
    assert.match(r.stdout, /\| \*\*total\*\* \| 8 \|/);
    assert.match(r.stdout, /prompt routing/);
    r = lory(['eval', 'perplexity', lory3.run, '--data', store, '--json', '--routing', 'segment', '--by', 'none']);
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(r.stdout) as { results: Array<{ routing: string; rows: Array<{ name: string }> }> };
    assert.deepEqual(json.results.map((x) => [x.routing, x.rows.map((y) => y.name)]), [['segment', ['all']]]);
    const out = join(root, 'ppl');
    r = lory(['eval', 'perplexity', lory3.run, '--data', store, '-o', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(out, 'perplexity.json')) && readFileSync(join(out, 'perplexity.md'), 'utf8') === r.stdout);

    const experts = join(root, 'experts');
    r = lory(['inspect-experts', lory3.run, '--data', store, '-o', experts, '--shuffles', '5']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`report: ${join(experts, 'report.html')}`));
    assert.ok(existsSync(join(experts, 'heatmap.png')));

    r = lory(['generate', lory3.run, 'ab', '-n', '4', '-t', '0']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.startsWith('ab'), r.stdout);
    assert.match(r.stderr, /tokens .*prompt routing.*stopped by/);
    const fromStdin = lory(['generate', lory3.run, '-n', '4', '-t', '0'], 'ab');
    assert.equal(fromStdin.stdout, r.stdout, 'a prompt on stdin is the same prompt');
  });

  it('refuses each bad input with one line and exit code 2', async () => {
    // A dense checkpoint given to inspect-experts.
    userError(lory(['inspect-experts', dense.run, '--data', store, '-o', join(root, 'x')]), /dense checkpoint .*no routing to inspect/);
    // A held-out store from another tokenizer.
    const foreign = await heldOutStore(INSPECT_DOCS, byteTokenizer(tempDir('other'), '</s>'));
    userError(lory(['eval', 'perplexity', lory3.run, '--data', foreign]), /made with another tokenizer/);
    // A missing metadata field.
    userError(lory(['eval', 'perplexity', lory3.run, '--data', store, '--by', 'topic']), /documents\.jsonl: line 1 has no 'topic' field/);
    // A prompt on stdin that is not UTF-8: refused as prepare refuses such text, not read as U+FFFD.
    userError(lory(['generate', lory3.run, '-n', '1'], Buffer.from('caf\xe9', 'latin1')), /^error: stdin: the prompt is not valid UTF-8 at byte offset 3$/);
    // A prompt longer than the context.
    userError(lory(['generate', lory3.run, 'x'.repeat(40)]), /the prompt is 40 tokens; the model's context holds 16/);
    // A truncated checkpoint.
    const broken = tempDir('broken');
    cpSync(lory3.run, broken, { recursive: true });
    const ckptDir = join(broken, 'checkpoints', readFileSync(join(broken, 'checkpoints', 'latest'), 'utf8').trim());
    truncateSync(join(ckptDir, 'model.safetensors'), 64);
    userError(lory(['eval', 'perplexity', broken, '--data', store]), /model\.safetensors/);
    userError(lory(['generate', broken, 'hi']), /model\.safetensors/);
    // An empty store (its offsets list no document).
    const empty = tempDir('empty');
    cpSync(store, empty, { recursive: true });
    writeFileSync(join(empty, 'offsets.bin'), Buffer.alloc(8));
    const manifest = JSON.parse(readFileSync(join(empty, 'manifest.json'), 'utf8')) as { files: Record<string, { bytes: number }>; stats: { documents: number } };
    manifest.files['offsets.bin']!.bytes = 8;
    manifest.stats.documents = 0; // consistent with its offsets: empty, not damaged
    writeFileSync(join(empty, 'manifest.json'), JSON.stringify(manifest));
    userError(lory(['eval', 'perplexity', lory3.run, '--data', empty]), /holds no documents/);
    // Flags out of range.
    userError(lory(['eval', 'perplexity', lory3.run, '--data', store, '--stride', '99']), /--stride 99/);
    userError(lory(['generate', lory3.run, 'hi', '--top-p', '0']), /top-p/);
  });
});
