import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lossCurvesSpec, validPoints } from './loss-curves.js';
import { renderSvg } from './render.js';

const METRICS = [
  '{"type":"step","step":1,"tokens":2048,"loss":8.3}',
  '{"type":"valid","step":50,"loss":6.47,"tokens":102400}',
  '',
  '{"type":"valid","step":100,"loss":5.9,"tokens":204800}',
].join('\n');

test('validPoints keeps only the validation records, in order, with their step, tokens and loss', () => {
  assert.deepEqual(validPoints('dense', METRICS), [
    { run: 'dense', step: 50, tokens: 102400, loss: 6.47 },
    { run: 'dense', step: 100, tokens: 204800, loss: 5.9 },
  ]);
});

test('a malformed metrics line is an error naming the file and line', () => {
  assert.throws(() => validPoints('x', '{"type":"valid","step":1,"loss":2,"tokens":3}\n{oops', 'runs/x/metrics.jsonl'), /runs\/x\/metrics\.jsonl:2: not a JSON line/);
  assert.throws(() => validPoints('x', '{"type":"valid","step":1,"loss":"2","tokens":3}', 'm.jsonl'), /m\.jsonl:1: .*numeric step, loss and tokens/);
});

test('the loss-curve figure renders one line per run with tokens in millions', async () => {
  const points = [...validPoints('dense', METRICS), ...validPoints('lory', METRICS.replace('6.47', '6.3'))];
  const spec = lossCurvesSpec(points) as { data: { values: { run: string; mtokens: number }[] } };
  assert.deepEqual([...new Set(spec.data.values.map((v) => v.run))], ['dense', 'lory']);
  assert.equal(spec.data.values[1]?.mtokens, 0.2048);
  const svg = await renderSvg(lossCurvesSpec(points));
  assert.match(svg, /^<svg/);
  assert.match(svg, /dense/);
  assert.match(svg, /lory/);
  assert.match(svg, /validation loss/);
});
