/**
 * The reports in a real browser: Debian's chromium, headless, driven by playwright-core. No console
 * errors, no network requests, every figure drawn; a screenshot is kept (LORY_SCREENSHOT=<path> and
 * LORY_REPORT_SCREENSHOT=<path> copy the expert report's and the training report's somewhere to look
 * at). Skipped, saying why, where chromium is not installed (`bin/setup --test` installs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { PROJECT_ROOT } from '../artifacts/index.js';
import { tempDir } from '../data/testing.js';
import { byteTokenizer, heldOutStore, tinyCheckpoint, tinyModel } from '../eval/testing.js';
import { INSPECT_DOCS } from '../inspect/testing.js';
import { inspectExperts } from '../inspect/inspect.js';
import { trainedRuns } from './testing.js';
import { readReportRuns, writeTrainingReport } from './training.js';

export const CHROMIUM = process.env.LORY_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const skip = existsSync(CHROMIUM) ? false : `chromium is not installed at ${CHROMIUM} (bin/setup --test installs Debian's chromium package)`;

interface Opened {
  page: Page;
  /** Console errors and warnings, page errors. */
  problems: string[];
  /** Every request but the page's own URL. */
  requests: string[];
}

/** Opens `url` in headless Chromium, recording console problems and requests, for `body`. */
async function inChromium(url: string, body: (o: Opened) => Promise<void>): Promise<void> {
  const { chromium } = await import('playwright-core');
  const context = await chromium.launchPersistentContext(tempDir('chromium-profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport: { width: 1200, height: 900 } });
  try {
    const page = await context.newPage();
    const o: Opened = { page, problems: [], requests: [] };
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') o.problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => o.problems.push(`page error: ${e.message}`));
    context.on('request', (r) => {
      if (r.url() !== url) o.requests.push(r.url());
    });
    const response = await page.goto(url, { waitUntil: 'load' });
    assert.ok(response === null || response.ok(), 'the report loads');
    await body(o);
  } finally {
    await context.close();
  }
}

/** A full-page screenshot, checked to be a real image; LORY_SCREENSHOT=<path> copies it to look at. */
async function screenshot(page: Page, path: string, copyTo = process.env.LORY_SCREENSHOT): Promise<void> {
  await page.screenshot({ path, fullPage: true });
  assert.ok(statSync(path).size > 10_000, 'a real screenshot');
  if (copyTo) copyFileSync(path, copyTo);
}

test('report.html opens in headless Chromium with no console errors and no network requests, and every figure renders with a non-zero size', { skip, timeout: 120_000 }, async () => {
  const tok = byteTokenizer(tempDir('tok'));
  const store = await heldOutStore(INSPECT_DOCS, tok);
  const ck = await tinyCheckpoint(tinyModel({ nLayers: 3 }), tok, 2);
  const out = join(tempDir('browser'), 'report');
  await inspectExperts({ checkpoint: ck.run, data: store, out, shuffles: 10 });
  const url = pathToFileURL(join(out, 'report.html')).href;
  await inChromium(url, async ({ page, problems, requests }) => {
    const figures = await page.$$('figure.figure');
    assert.equal(figures.length, 3, 'heatmap, utilisation and specialisation figures');
    for (const f of figures) {
      const id = await f.getAttribute('id');
      const svg = await f.$('svg');
      assert.ok(svg, `${id}: has an inline SVG`);
      const box = await svg.boundingBox();
      assert.ok(box && box.width > 50 && box.height > 50, `${id}: rendered ${JSON.stringify(box)}`);
      const marks = await svg.$$eval('path, rect', (els) => els.filter((e) => (e as unknown as { getBBox(): { width: number } }).getBBox().width > 0).length);
      assert.ok(marks > 3, `${id}: ${marks} visible marks`);
    }
    const rows = await page.$$eval('#layer-table tbody tr', (trs) => trs.length);
    assert.equal(rows, 3, 'one row per layer');
    await screenshot(page, join(out, 'screenshot.png'));
    assert.deepEqual(problems, [], 'no console errors or warnings');
    assert.deepEqual(requests, [], 'no network requests');
  });
});

type Line = Record<string, unknown> & { type: string; step: number };
const linesOf = (run: string): Line[] =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Line);

/** How many points each line of the training report must have: every metrics line with a finite value (no line is long enough to be downsampled). */
function expectedPoints(runs: Record<string, string>): Map<string, number> {
  const want = new Map<string, number>();
  for (const [name, dir] of Object.entries(runs)) {
    const lines = linesOf(dir);
    const steps = lines.filter((l) => l.type === 'step');
    const count = (key: string) => steps.filter((s) => typeof s[key] === 'number').length;
    const label = name === 'wild' ? 'wild (diverged)' : name;
    want.set(`loss: raw: ${label}`, count('loss'));
    want.set(`loss: smoothed: ${label}`, count('loss'));
    want.set(`valid-loss: valid: ${label}`, lines.filter((l) => l.type === 'valid' && typeof l.loss === 'number').length);
    for (const [id, key] of [['lr', 'lr'], ['grad-norm', 'gradNorm'], ['throughput', 'tokensPerSecond'], ['mfu', 'mfu']] as const) want.set(`${id}: ${id}: ${label}`, count(key));
    const routed = steps.filter((s) => Array.isArray(s.routing)) as Array<Line & { routing: Array<{ layer: number }> }>;
    for (const layer of new Set(routed.flatMap((s) => s.routing.map((r) => r.layer)))) {
      for (const id of ['routing-entropy', 'routing-utilisation', 'routing-balance']) want.set(`${id}: layer ${layer}: ${label}`, routed.length);
    }
  }
  return want;
}

test('lory report: the page of three runs opens in headless Chromium with no console errors and no requests; every line has a point per metrics line; the table has the manifests\' numbers', { skip, timeout: 180_000 }, async () => {
  const runs = await trainedRuns();
  const out = join(tempDir('browser-training'), 'report');
  await writeTrainingReport(readReportRuns([runs.dense, runs.lory, runs.wild]), { out });
  const url = pathToFileURL(join(out, 'report.html')).href;
  await inChromium(url, async ({ page, problems, requests }) => {
    const ids = await page.$$eval('figure.figure', (fs) => fs.map((f) => f.id));
    assert.deepEqual(ids, ['loss', 'valid-loss', 'lr', 'grad-norm', 'throughput', 'mfu', 'routing-entropy', 'routing-utilisation', 'routing-balance']);
    for (const id of ids) {
      const box = await (await page.$(`#${id} svg`))!.boundingBox();
      assert.ok(box && box.width > 200 && box.height > 100, `${id}: rendered ${JSON.stringify(box)}`);
    }
    // Each line's points, counted in the SVG path the browser drew (M/L commands), against the metrics lines.
    const drawn = new Map(
      await page.$$eval('figure.figure path[aria-roledescription="line mark"]', (ps) => ps.map((p) => [p.getAttribute('aria-label') ?? '', (p.getAttribute('d') ?? '').match(/[ML]/g)?.length ?? 0] as [string, number])),
    );
    const points = await page.$$eval('#valid-loss path[aria-roledescription="point"]', (ps) => ps.length);
    const want = expectedPoints({ dense: runs.dense, lory: runs.lory, wild: runs.wild });
    want.delete('valid-loss: valid: wild (diverged)'); // no validation before it diverged: no line at all
    for (const [label, n] of want) {
      if (n === 0) continue;
      assert.equal(drawn.get(label), n, `${label}: ${drawn.get(label)} points drawn, ${n} metrics lines`);
    }
    assert.equal(points, linesOf(runs.dense).filter((l) => l.type === 'valid').length + linesOf(runs.lory).filter((l) => l.type === 'valid').length, 'a point per validation');
    assert.ok(!drawn.has('routing-entropy: layer 0: dense'), 'a dense run has no routing lines');
    // The bad step of the diverged run is a red band; the conversion a rule.
    assert.equal(await page.$$eval('#loss path[aria-label*="loss not finite at step 4"]', (e) => e.length), 1);
    assert.equal(await page.$$eval('#loss line[aria-roledescription="rule mark"][aria-label*="lory: dense → experts after step 6"]', (e) => e.length), 1);

    const cells = await page.$$eval('#summary-table tbody tr', (trs) => trs.map((tr) => Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.key, td.textContent ?? '']))));
    assert.equal(cells.length, 3);
    for (const [i, run] of [runs.dense, runs.lory].entries()) {
      const stats = (JSON.parse(readFileSync(join(run, 'manifest.json'), 'utf8')) as { stats: Record<string, number> }).stats;
      const c = cells[i]!;
      assert.equal(c.state, 'finished');
      assert.equal(c.steps, String(stats.steps));
      assert.equal(c.tokens, stats.tokens!.toLocaleString('en-US'));
      assert.equal(c.finalLoss, stats.finalLoss!.toFixed(4));
      assert.match(c.validLoss!, new RegExp(`^${stats.validLoss!.toFixed(4)} \\(step ${stats.steps}\\)$`));
      assert.equal(c.medianTokensPerSecond, Math.round(stats.medianTokensPerSecond!).toLocaleString('en-US'));
      assert.equal(c.medianMfu, `${(100 * stats.medianMfu!).toFixed(1)}%`);
      assert.equal(c.convertedAt, stats.convertedAt === null ? '—' : String(stats.convertedAt));
    }
    assert.equal(cells[2]!.state, 'diverged at step 4');
    assert.equal(cells[2]!.finalLoss, 'not finite');
    const differing = await page.$$eval('#config-diff tbody td:first-child', (tds) => tds.map((td) => td.textContent));
    for (const key of ['run', 'model.experts', 'train.seed', 'train.lr', 'train.clip_norm']) assert.ok(differing.includes(key), `config differences name ${key}: ${differing.join(', ')}`);
    assert.ok(!differing.includes('model.d_model'), 'settings all runs share are not listed');

    await screenshot(page, join(out, 'screenshot.png'), process.env.LORY_REPORT_SCREENSHOT);
    assert.deepEqual(problems, [], 'no console errors or warnings');
    assert.deepEqual(requests, [], 'no network requests');
  });
});

test('lory report --watch: the page open in Chromium reloads itself and shows the new steps', { skip, timeout: 180_000 }, async () => {
  const runs = await trainedRuns();
  const dir = join(tempDir('browser-watch'), 'runs', 'lory');
  mkdirSync(dir, { recursive: true });
  const lines = readFileSync(join(runs.lory, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean);
  writeFileSync(join(dir, 'metrics.jsonl'), `${lines.slice(0, 10).join('\n')}\n`);
  copyFileSync(join(runs.lory, 'config.json'), join(dir, 'config.json'));
  const lock = join(dir, '..', '.lory-lock-lory');
  writeFileSync(lock, `${process.pid}\n`); // "training": a live pid holds the run
  const out = join(dir, '..', '..', 'report');
  const child = spawn(join(PROJECT_ROOT, 'bin', 'lory'), ['report', dir, '--watch', '--interval', '1'], { stdio: 'ignore' });
  try {
    const html = join(out, 'report.html');
    for (let i = 0; i < 600 && !existsSync(html); i++) await new Promise((r) => setTimeout(r, 100));
    const url = pathToFileURL(html).href;
    await inChromium(url, async ({ page, problems, requests }) => {
      let loads = 0;
      page.on('load', () => loads++);
      assert.match(await page.textContent('#live') ?? '', /Still training: lory/);
      assert.equal(await page.textContent('#summary-table td[data-key="steps"]'), '9 / 24');
      appendFileSync(join(dir, 'metrics.jsonl'), `${lines.slice(10).join('\n')}\n`);
      for (let i = 0; i < 300; i++) {
        await new Promise((r) => setTimeout(r, 100));
        const steps = await page.textContent('#summary-table td[data-key="steps"]').catch(() => null);
        if (steps === '24') break;
      }
      assert.equal(await page.textContent('#summary-table td[data-key="steps"]'), '24', 'the reloaded page shows the new steps');
      assert.ok(loads >= 1, `the page reloaded itself (${loads} loads)`);
      assert.deepEqual(problems, [], 'no console errors or warnings');
      assert.deepEqual(requests, [], 'no network requests');
    });
  } finally {
    child.kill('SIGINT');
    rmSync(lock, { force: true });
  }
});
