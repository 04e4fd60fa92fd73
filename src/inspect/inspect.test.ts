import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../data/testing.js';
import { byteTokenizer, heldOutStore, tinyCheckpoint, tinyModel } from '../eval/testing.js';
import { INSPECT_DOCS } from './testing.js';
import { inspectExperts, inspectSummary } from './inspect.js';


test('inspect-experts writes statistics consistent with the routing it recorded, figures as SVG and PNG, and a self-contained report.html', async () => {
  const tok = byteTokenizer(tempDir('tok'));
  const store = await heldOutStore(INSPECT_DOCS, tok);
  const c = tinyModel();
  const ck = await tinyCheckpoint(c, tok, 5);
  const out = join(tempDir('inspect'), 'report');
  const r = await inspectExperts({ checkpoint: ck.run, data: store, out, shuffles: 10 });
  assert.equal(r.skipped, false);
  const rep = r.report;
  assert.deepEqual(rep.domains, ['python', 'fiction', 'email']);
  assert.deepEqual(rep.documentsPerDomain, [3, 3, 2]);
  // Segments recorded: those holding a prediction scored for the first time, in non-overlapping windows.
  const expected = INSPECT_DOCS.reduce((a, d) => {
    const M = Buffer.byteLength(d.text) + 1;
    const W = c.contextLength;
    const T = c.segmentLength;
    let n = 0;
    let scored = 0;
    for (let begin = 0; scored < M; begin += W) {
      const end = Math.min(begin + W, M);
      const start = Math.max(0, end - W);
      for (let k = 0; k < W / T; k++) if (start + (k + 1) * T > scored && start + k * T < end) n++;
      scored = end;
    }
    return a + n;
  }, 0);
  assert.equal(rep.segments, expected);
  for (const s of rep.layers) {
    assert.equal(s.meanWeight.length, 3);
    for (const row of s.meanWeight) close(row.reduce((a, b) => a + b, 0), 1, 1e-5);
    close(s.load.reduce((a, b) => a + b, 0), 1, 1e-5);
    assert.ok(s.specialisation !== null && s.specialisation >= 0 && s.specialisation <= 1);
    assert.ok(s.chance && s.chance.shuffles === 10);
  }
  for (const name of ['heatmap', 'utilisation', 'specialisation']) {
    const svg = readFileSync(join(out, `${name}.svg`), 'utf8');
    assert.match(svg, /^<svg[^>]*width="\d+/);
    const png = readFileSync(join(out, `${name}.png`));
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], `${name}.png is a PNG`);
    assert.ok(png.readUInt32BE(16) > 100 && png.readUInt32BE(20) > 50, `${name}.png has a real size`);
  }
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.equal((html.match(/<figure class="figure"/g) ?? []).length, 3);
  assert.doesNotMatch(html, /(src|href)=["']?(https?:|\/\/)/, 'no network resources');
  assert.doesNotMatch(html, /<script/);
  assert.ok(html.includes('python') && html.includes('I(D; X) / H(D)'));
  assert.match(inspectSummary(rep, out), /report: .*report\.html/);
  assert.ok(statSync(join(out, 'manifest.json')).size > 0);
  const again = await inspectExperts({ checkpoint: ck.run, data: store, out, shuffles: 10 });
  assert.equal(again.skipped, true, 'an up-to-date report is not redone');
});

test('inspect-experts refuses a dense checkpoint and a missing domain field, in one line', async () => {
  const tok = byteTokenizer(tempDir('tok'));
  const store = await heldOutStore(INSPECT_DOCS, tok);
  const dense = await tinyCheckpoint(tinyModel({ experts: 1 }), tok);
  const out = join(tempDir('inspect'), 'r');
  await assert.rejects(inspectExperts({ checkpoint: dense.dir, data: store, out }), (e: Error) => e.name === 'InputError' && /dense checkpoint/.test(e.message));
  assert.equal(existsSync(out), false, 'nothing written');
  const lory = await tinyCheckpoint(tinyModel(), tok);
  await assert.rejects(inspectExperts({ checkpoint: lory.dir, data: store, out, by: 'source' }), (e: Error) => e.name === 'InputError' && /line 1 has no 'source' field/.test(e.message));
  await assert.rejects(inspectExperts({ checkpoint: lory.dir, data: store, out, by: 'none' }), (e: Error) => e.name === 'InputError' && /--by must name the metadata field/.test(e.message));
});

function close(a: number, b: number, tol: number) {
  assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
}
