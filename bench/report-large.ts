/**
 * `lory report` on a long run: a metrics.jsonl of N steps (default 100,000) in the trainer's format —
 * a Lory run of 8 layers × 8 experts with routing statistics on every step, validation every 500
 * steps, a stretch of non-finite losses and a few loss spikes — written to a temporary run folder,
 * then drawn. Prints the time of each phase, the size of the page and of the figures, and how many
 * points the longest line kept (the downsampling) and whether the spikes survived it.
 *   node dist/bench/report-large.js [steps]
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../src/data/testing.js';
import { readReportRuns, writeTrainingReport } from '../src/report/training.js';

const steps = Number(process.argv[2] ?? 100_000);
const LAYERS = 8;
const EXPERTS = 8;
const SPIKES = [12_345, 54_321, 87_654].filter((s) => s <= steps);

function writeRun(dir: string): number {
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const lines: string[] = [];
  const convertAt = Math.round(steps * 0.05);
  for (let s = 1; s <= steps; s++) {
    const bad = s > steps * 0.6 && s <= steps * 0.6 + 20;
    const loss = bad ? null : SPIKES.includes(s) ? 12 : 2 + 6 * Math.exp(-s / (steps / 5)) + 0.2 * (rand() - 0.5);
    const line: Record<string, unknown> = { type: 'step', step: s, phase: s <= convertAt ? 'dense' : 'moe', tokens: s * 4096, loss, lr: 3e-4 * Math.min(1, s / 2000), gradNorm: 0.5 + rand(), tokensPerSecond: 50_000 + 5000 * rand(), mfu: 0.3 + 0.05 * rand(), stepMs: 80 };
    if (s > convertAt) {
      line.routing = Array.from({ length: LAYERS }, (_, layer) => ({ layer, entropy: Math.log(EXPERTS) * (0.6 + 0.4 * rand()), utilisation: Array.from({ length: EXPERTS }, () => rand() / 2), cv: rand() }));
    }
    lines.push(JSON.stringify(line));
    if (s % 500 === 0) lines.push(JSON.stringify({ type: 'valid', step: s, loss: 2.1 + 6 * Math.exp(-s / (steps / 5)), tokens: s * 4096 }));
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'metrics.jsonl'), `${lines.join('\n')}\n`);
  const config = { run: 'long', model: { vocab_size: 32000, d_model: 1024, n_layers: LAYERS, n_heads: 16, experts: EXPERTS, moe: 'lory' }, train: { steps, clip_norm: 1, dense_warmup: 0.05 } };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  return statSync(join(dir, 'metrics.jsonl')).size;
}

async function main() {
  const root = tempDir('report-bench');
  const run = join(root, 'runs', 'long');
  const bytes = writeRun(run);
  const t0 = performance.now();
  const runs = readReportRuns([run]);
  const t1 = performance.now();
  const out = join(root, 'report');
  await writeTrainingReport(runs, { out });
  const t2 = performance.now();
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  const loss = readFileSync(join(out, 'loss.svg'), 'utf8');
  const raw = /aria-label="loss: raw: long \(stopped\)"[^>]* d="([^"]*)"/.exec(loss)?.[1] ?? '';
  const kept = raw.match(/[ML]/g)?.length ?? 0;
  const figures = statSync(join(out, 'loss.svg')).size;
  console.log(`metrics.jsonl: ${steps.toLocaleString('en-US')} steps, ${(bytes / 1e6).toFixed(1)} MB (${LAYERS} layers × ${EXPERTS} experts of routing per step)`);
  console.log(`read and parse: ${((t1 - t0) / 1000).toFixed(2)} s`);
  console.log(`figures (${runs.length} run, 9 figures, SVG + PNG) and page: ${((t2 - t1) / 1000).toFixed(2)} s`);
  console.log(`total: ${((t2 - t0) / 1000).toFixed(2)} s`);
  console.log(`report.html: ${(html.length / 1e6).toFixed(2)} MB; loss.svg: ${(figures / 1e3).toFixed(0)} kB`);
  console.log(`training loss line: ${kept.toLocaleString('en-US')} points drawn of ${steps.toLocaleString('en-US')} steps`);
  // The spikes are the line's highest points: with the y scale of the figure, they must be its top.
  const ys = [...raw.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
  console.log(`highest drawn points (SVG y, smaller is higher): ${[...ys].sort((a, b) => a - b).slice(0, SPIKES.length + 1).map((y) => y.toFixed(1)).join(', ')} — the ${SPIKES.length} loss spikes of 12 nats are kept`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
