import { test } from 'node:test';
import assert from 'node:assert/strict';
import { documentSequence, planWindows } from './windows.js';

test('strided windows score every prediction exactly once, each with at least min(i, W − stride) earlier inputs in its window', () => {
  for (const W of [1, 4, 16]) {
    for (let stride = 1; stride <= W; stride++) {
      for (const M of [1, 2, W - 1, W, W + 1, 3 * W + 2, 50]) {
        if (M < 1) continue;
        const seen = new Uint8Array(M);
        const windows = planWindows(M, W, stride);
        for (const w of windows) {
          assert.ok(w.length <= W && w.start >= 0 && w.start + w.length <= M, `window inside the document (M=${M} W=${W} s=${stride})`);
          if (M >= W) assert.equal(w.length, W, 'full windows whenever the document has W inputs');
          for (let p = w.scoreFrom; p < w.scoreTo; p++) {
            const i = w.start + p;
            seen[i] = seen[i]! + 1;
            assert.ok(p >= Math.min(i, W - stride), `position ${i} has ${p} earlier inputs in its window, expected ≥ ${Math.min(i, W - stride)} (M=${M} W=${W} s=${stride})`);
          }
        }
        assert.ok(seen.every((c) => c === 1), `every prediction scored once (M=${M} W=${W} s=${stride}): ${[...seen].join('')}`);
      }
    }
  }
});

test('non-overlapping windows (stride = window) are consecutive; the last one is pulled back to a full window', () => {
  assert.deepEqual(planWindows(10, 4, 4), [
    { start: 0, length: 4, scoreFrom: 0, scoreTo: 4 },
    { start: 4, length: 4, scoreFrom: 0, scoreTo: 4 },
    { start: 6, length: 4, scoreFrom: 2, scoreTo: 4 },
  ]);
  assert.deepEqual(planWindows(3, 4, 4), [{ start: 0, length: 3, scoreFrom: 0, scoreTo: 3 }]);
  assert.throws(() => planWindows(5, 4, 5), /stride/);
});

test('a document is scored as in the training stream: EOS before it, its own EOS predicted last', () => {
  const { inputs, targets } = documentSequence([5, 6, 7], 0);
  assert.deepEqual([...inputs], [0, 5, 6, 7]);
  assert.deepEqual([...targets], [5, 6, 7, 0]);
});
