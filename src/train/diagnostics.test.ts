import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StepDiagnostics } from './diagnostics.js';
import { routingStats } from './routing-stats.js';

describe('step diagnostics', () => {
  it('routing statistics: uniform weights give entropy ln E, no active expert, CV 0; one-hot weights give entropy 0', () => {
    const uniform = routingStats(new Array(4 * 6).fill(0.25), 4);
    assert.ok(Math.abs(uniform.entropy - Math.log(4)) < 1e-12);
    assert.deepEqual(uniform.utilisation, [0, 0, 0, 0]);
    assert.equal(uniform.cv, 0);
    // Segments: expert 0, expert 0, expert 1, expert 2 (one-hot).
    const e = [1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0];
    const hot = routingStats(e, 4);
    assert.equal(hot.entropy, 0);
    assert.deepEqual(hot.utilisation, [0.5, 0.25, 0.25, 0]);
    // Mean weights (0.5, 0.25, 0.25, 0): mean 0.25, population sd √(0.125/4).
    assert.ok(Math.abs(hot.cv - Math.sqrt(0.125 / 4) / 0.25) < 1e-12);
  });

  it('pools routing weights over micro-batches per layer (in layer order), averages scalar diag/* outputs, ignores other tensors', () => {
    const d = new StepDiagnostics();
    const a = [0.7, 0.1, 0.1, 0.1];
    const b = [0.1, 0.1, 0.1, 0.7];
    d.add('diag/routing/layer10', a);
    d.add('diag/routing/layer2', a);
    d.add('diag/aux_loss', [0.2]);
    d.add('diag/hidden_mean', [1, 2, 3]);
    d.add('diag/routing/layer10', b);
    d.add('diag/aux_loss', [0.4]);
    const s = d.summary(4);
    assert.deepEqual(s.routing!.map((r) => r.layer), [2, 10]);
    assert.deepEqual(s.routing![1], { layer: 10, ...routingStats([...a, ...b], 4) });
    assert.deepEqual(s.routing![1]!.utilisation, [0.5, 0, 0, 0.5]);
    assert.deepEqual(Object.keys(s.diag!), ['diag/aux_loss']);
    assert.ok(Math.abs(s.diag!['diag/aux_loss']! - 0.3) < 1e-15);
    assert.deepEqual(new StepDiagnostics().summary(4), {});
  });
});
