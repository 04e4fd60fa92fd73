/**
 * The expert report in a real browser: Debian's chromium, headless, driven by playwright-core. No
 * console errors, no network requests, every figure drawn with a non-zero size; a screenshot is kept
 * (LORY_SCREENSHOT=<path> copies it somewhere to look at). Skipped, saying why, where chromium is not
 * installed (`bin/setup --test` installs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tempDir } from '../data/testing.js';
import { byteTokenizer, heldOutStore, tinyCheckpoint, tinyModel } from '../eval/testing.js';
import { INSPECT_DOCS } from '../inspect/testing.js';
import { inspectExperts } from '../inspect/inspect.js';

export const CHROMIUM = process.env.LORY_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const skip = existsSync(CHROMIUM) ? false : `chromium is not installed at ${CHROMIUM} (bin/setup --test installs Debian's chromium package)`;

test('report.html opens in headless Chromium with no console errors and no network requests, and every figure renders with a non-zero size', { skip, timeout: 120_000 }, async () => {
  const { chromium } = await import('playwright-core');
  const tok = byteTokenizer(tempDir('tok'));
  const store = await heldOutStore(INSPECT_DOCS, tok);
  const ck = await tinyCheckpoint(tinyModel({ nLayers: 3 }), tok, 2);
  const out = join(tempDir('browser'), 'report');
  await inspectExperts({ checkpoint: ck.run, data: store, out, shuffles: 10 });
  const url = pathToFileURL(join(out, 'report.html')).href;

  const context = await chromium.launchPersistentContext(tempDir('chromium-profile'), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS, viewport: { width: 1200, height: 900 } });
  try {
    const page = await context.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    context.on('request', (r) => {
      if (r.url() !== url) requests.push(r.url());
    });
    const response = await page.goto(url, { waitUntil: 'load' });
    assert.ok(response === null || response.ok(), 'the report loads');
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
    const shot = join(out, 'screenshot.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000, 'a real screenshot');
    if (process.env.LORY_SCREENSHOT) copyFileSync(shot, process.env.LORY_SCREENSHOT);
    assert.deepEqual(problems, [], 'no console errors or warnings');
    assert.deepEqual(requests, [], 'no network requests');
  } finally {
    await context.close();
  }
});
