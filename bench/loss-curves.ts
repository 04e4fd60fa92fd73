/**
 * Validation-loss curves of training runs in one figure (docs/RESULTS.md):
 *   node dist/bench/loss-curves.js -o docs/figures/repro-valid-loss work/repro/runs/dense work/repro/runs/lory8-similarity …
 * writes <prefix>.svg and <prefix>.png from each run directory's metrics.jsonl (the run is named by
 * its directory). Not a command of `lory` because it only redraws what training already logged.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { lossCurvesSpec, validPoints } from '../src/report/loss-curves.js';
import { renderFigure } from '../src/report/render.js';

function writeAtomic(path: string, data: string | Buffer) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

async function main() {
  const args = process.argv.slice(2);
  const o = args.indexOf('-o');
  if (o < 0 || !args[o + 1]) {
    console.error('usage: node dist/bench/loss-curves.js -o <output prefix> <run dir>...');
    process.exit(2);
  }
  const prefix = args[o + 1];
  const runs = args.filter((_, i) => i !== o && i !== o + 1);
  if (!runs.length) {
    console.error('loss-curves: give at least one run directory');
    process.exit(2);
  }
  const points = runs.flatMap((dir) => {
    const file = join(dir, 'metrics.jsonl');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      console.error(`loss-curves: cannot read ${file} (expected a run directory made by lory train)`);
      process.exit(2);
    }
    return validPoints(basename(dir), text, file);
  });
  const fig = await renderFigure(lossCurvesSpec(points, 'Validation loss, small-scale reproduction'));
  writeAtomic(`${prefix}.svg`, fig.svg);
  writeAtomic(`${prefix}.png`, fig.png);
  for (const run of [...new Set(points.map((p) => p.run))]) {
    const last = points.filter((p) => p.run === run).at(-1)!;
    console.log(`${run}: final validation loss ${last.loss.toFixed(4)} at step ${last.step} (${last.tokens} tokens)`);
  }
  console.log(`wrote ${prefix}.svg and ${prefix}.png`);
}

main().catch((e) => {
  console.error(`loss-curves: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
