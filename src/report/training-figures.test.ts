import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RunData, StepRow } from './run-data.js';
import { DEFAULT_BUCKETS } from './series.js';
import { trainingFigures } from './training-figures.js';

const step = (n: number, loss: number | null, tokensPerStep = 100): StepRow => ({ step: n, tokens: n * tokensPerStep, phase: 'dense', loss, lr: 1e-3, gradNorm: 1, tokensPerSecond: 10, mfu: 0.1, stepMs: 1, routing: null });
const run = (name: string, steps: StepRow[]): RunData => ({ dir: name, name, state: 'finished', pid: null, config: null, steps, valid: [], problems: [], metricsSha256: '', contentHash: null });

interface Layer {
  data?: { values: Array<Record<string, unknown>> };
  mark: { type: string };
  encoding: { x?: { scale?: { domain: number[] } }; color?: { scale: { domain: string[] } } };
}
const layersOf = (spec: unknown) => (spec as { layer: Layer[] }).layer;

test('every figure spans the same x range, 0 to the furthest run, and colours the runs in the same order', () => {
  const a = run('a', Array.from({ length: 50 }, (_, i) => step(i + 1, 3)));
  const b = run('b', Array.from({ length: 20 }, (_, i) => step(i + 1, 3, 1000)));
  const figures = trainingFigures([{ label: 'a', data: a }, { label: 'b (training)', data: b }], 'tokens');
  for (const f of figures) {
    for (const l of layersOf(f.spec).filter((x) => x.encoding.x?.scale)) assert.deepEqual(l.encoding.x!.scale!.domain, [0, 20_000], f.id);
    for (const l of layersOf(f.spec).filter((x) => x.encoding.color)) assert.deepEqual(l.encoding.color!.scale.domain, ['a', 'b (training)'], f.id);
  }
  assert.deepEqual(trainingFigures([{ label: 'a', data: a }], 'steps').map((f) => f.id), ['loss', 'lr', 'grad-norm', 'throughput', 'mfu'], 'no validation, no routing: no such figures');
});

test('a long run is downsampled per line; a run with thousands of bad steps draws a few merged bands, each naming its steps', () => {
  const steps = Array.from({ length: 20_000 }, (_, i) => step(i + 1, (i + 1) % 10 === 0 ? null : Math.sin(i)));
  const [loss] = trainingFigures([{ label: 'r', data: run('r', steps) }], 'steps');
  const layers = layersOf(loss!.spec);
  const bands = layers.find((l) => l.mark.type === 'rect')!.data!.values;
  assert.ok(bands.length >= 1 && bands.length <= 720, `${bands.length} bands for 2,000 bad steps`);
  assert.equal(bands[0]!.x0, 9);
  assert.match(String(bands[0]!.what), /^r: loss not finite at step 10 \(and more, to step \d+\)$/);
  assert.equal(Math.max(...bands.map((b) => Number(b.x1))), 20_000, 'the bands reach the last bad step');
  for (const l of layers.filter((x) => x.mark.type === 'line')) {
    const n = l.data!.values.length;
    assert.ok(n <= 4 * DEFAULT_BUCKETS + 1000 && n < 20_000, `${n} points drawn of 20,000`);
    assert.ok(l.data!.values.some((v) => v.y === null), 'the breaks are kept');
  }
});
