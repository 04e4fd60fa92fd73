import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../data/testing.js';
import { openTokenStore } from '../data/token-store.js';
import { byteTokenizer, heldOutStore, tinyCheckpoint, tinyModel } from '../eval/testing.js';
import { modelRunner } from '../model/testing.js';
import type { ModelConfig, ParamValues } from '../model/index.js';
import { INSPECT_DOCS } from './testing.js';
import { inspectExperts, inspectSummary } from './inspect.js';

/**
 * The routing weights of every recorded segment, per layer, from the model graph run window by window
 * (batch 1, EOS padding) and read layer by layer: non-overlapping windows of the context, the last one
 * pulled back to a full window; a segment counts in the window that scores its first prediction, and
 * only when it holds a real token.
 */
async function referenceRouting(c: ModelConfig, params: ParamValues, store: string): Promise<{ domain: string[]; weights: number[][][] }> {
  const W = c.contextLength;
  const T = c.segmentLength;
  const E = c.experts;
  const st = openTokenStore(store);
  const runner = await modelRunner(c, { batch: 1, seq: W });
  const domain: string[] = [];
  const weights: number[][][] = Array.from({ length: c.nLayers }, () => []); // [layer][segment][expert]
  try {
    for (let d = 0; d < st.documentCount; d++) {
      const inputs = [0, ...st.documentTokens(d)];
      const M = inputs.length;
      let scored = 0;
      for (let end = Math.min(W, M); scored < M; end = Math.min(end + W, M)) {
        const start = Math.max(0, end - W);
        const tokens = inputs.slice(start, start + W);
        while (tokens.length < W) tokens.push(0);
        const { routing } = await runner.run(params, { tokens });
        for (let k = 0; k < W / T; k++) {
          if (start + (k + 1) * T <= scored || start + k * T >= end) continue;
          domain.push(st.domains()[d]!);
          for (let l = 0; l < c.nLayers; l++) weights[l]!.push(Array.from(routing[l]!.subarray(k * E, (k + 1) * E)));
        }
        scored = end;
      }
    }
  } finally {
    await runner.dispose();
  }
  return { domain, weights };
}

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
  // Every layer's statistics against that layer's own routing, recomputed from the model graph.
  const ref = await referenceRouting(c, ck.params, store);
  assert.equal(ref.domain.length, rep.segments);
  const E = c.experts;
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const H = (p: number[]) => -p.reduce((a, x) => a + (x > 0 ? x * Math.log(x) : 0), 0);
  assert.equal(rep.layers.length, c.nLayers);
  for (const s of rep.layers) {
    const w = ref.weights[s.layer]!;
    const what = `layer ${s.layer}`;
    assert.equal(s.meanWeight.length, 3);
    const means = rep.domains.map((name, d) => {
      const mine = w.filter((_, i) => ref.domain[i] === name);
      assert.equal(s.segmentsPerDomain[d], mine.length);
      const m = Array.from({ length: E }, (_, e) => mean(mine.map((x) => x[e]!)));
      for (let e = 0; e < E; e++) close(s.meanWeight[d]![e]!, m[e]!, 1e-5, `${what}, ${name}, expert ${e}: mean weight`);
      return m;
    });
    const load = Array.from({ length: E }, (_, e) => mean(w.map((x) => x[e]!)));
    for (let e = 0; e < E; e++) {
      close(s.load[e]!, load[e]!, 1e-5, `${what}, expert ${e}: load`);
      // Weights near the 2/E threshold could fall either side with float32 noise: none lie within 1e-4 of it.
      assert.ok(w.every((x) => Math.abs(x[e]! - 2 / E) > 1e-4), `${what}: a weight sits on the utilisation threshold`);
      close(s.utilisation[e]!, mean(w.map((x) => (x[e]! > 2 / E ? 1 : 0))), 1e-12, `${what}, expert ${e}: utilisation`);
    }
    close(s.entropy, mean(w.map(H)), 1e-5, `${what}: entropy`);
    close(s.loadBalance, H(load) / Math.log(E), 1e-5, `${what}: load balance`);
    // Specialisation: the p(domain)-weighted Jensen–Shannon divergence of the domains' mean routing over H(domain).
    const pd = rep.domains.map((name) => ref.domain.filter((x) => x === name).length / ref.domain.length);
    const jsd = H(load) - rep.domains.reduce((a, _, d) => a + pd[d]! * H(means[d]!), 0);
    close(s.specialisation!, jsd / H(pd), 1e-5, `${what}: specialisation`);
    assert.ok(s.chance && s.chance.shuffles === 10);
  }
  assert.ok(Math.abs(rep.layers[0]!.meanWeight[0]![0]! - rep.layers[1]!.meanWeight[0]![0]!) > 1e-3, 'the layers route differently, so a mix-up would show');
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

function close(a: number, b: number, tol: number, what = '') {
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b}`);
}
