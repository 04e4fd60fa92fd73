/**
 * Validation-loss curves of several training runs in one figure, read from each run's metrics.jsonl
 * (the `{"type":"valid","step":…,"loss":…,"tokens":…}` lines the trainer appends) and drawn with the
 * same Vega-Lite → SVG/PNG path as the expert report's figures.
 */
import type { TopLevelSpec } from 'vega-lite';

export interface ValidPoint {
  run: string;
  step: number;
  tokens: number;
  loss: number;
}

/** The validation points of one run's metrics.jsonl text; a malformed line throws naming file and line. */
export function validPoints(run: string, text: string, file = 'metrics.jsonl'): ValidPoint[] {
  const points: ValidPoint[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw new Error(`${file}:${i + 1}: not a JSON line`);
    }
    const r = record as { type?: unknown; step?: unknown; loss?: unknown; tokens?: unknown };
    if (r.type !== 'valid') return;
    if (typeof r.step !== 'number' || typeof r.loss !== 'number' || typeof r.tokens !== 'number') {
      throw new Error(`${file}:${i + 1}: a "valid" record needs numeric step, loss and tokens`);
    }
    points.push({ run, step: r.step, tokens: r.tokens, loss: r.loss });
  });
  return points;
}

/** One line per run: validation loss (nats/token) against training tokens seen. */
export function lossCurvesSpec(points: ValidPoint[], title = 'Validation loss during training'): TopLevelSpec {
  const runs = [...new Set(points.map((p) => p.run))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 480,
    height: 300,
    data: { values: points.map((p) => ({ ...p, mtokens: p.tokens / 1e6 })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'mtokens', type: 'quantitative', title: 'training tokens (millions)' },
      y: { field: 'loss', type: 'quantitative', title: 'validation loss (nats/token)', scale: { zero: false } },
      color: { field: 'run', type: 'nominal', title: 'run', sort: runs },
      tooltip: [{ field: 'run' }, { field: 'step' }, { field: 'loss', format: '.4f' }],
    },
  } as TopLevelSpec;
}
