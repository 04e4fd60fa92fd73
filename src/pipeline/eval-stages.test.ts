import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../artifacts/index.js';
import { parsePipeline } from './load.js';
import { planStages } from './stages.js';

const demo = readFileSync(join(PROJECT_ROOT, 'pipelines', 'demo.yaml'), 'utf8');

test('a pipeline with held-out data evaluates every run after training and inspects the routing of each Lory run', () => {
  const stages = planStages(parsePipeline(demo, 'demo.yaml'));
  const names = stages.map((s) => s.name);
  assert.deepEqual(names.slice(-6), ['train-dense', 'train-lory', 'eval-perplexity', 'make-tasks', 'eval-tasks', 'inspect-lory']);
  assert.equal(stages.find((s) => s.name === 'eval-tasks')!.output, join('work/demo', 'eval-tasks'));
  const noTasks = planStages(parsePipeline(demo.replace(/^tasks:.*(\n  .*)*$/m, ''), 'demo.yaml')).map((s) => s.name);
  assert.ok(!noTasks.includes('make-tasks') && !noTasks.includes('eval-tasks'), `without a tasks: section: ${noTasks}`);
  assert.equal(stages.find((s) => s.name === 'eval-perplexity')!.output, join('work/demo', 'eval'));
  assert.equal(stages.find((s) => s.name === 'inspect-lory')!.output, join('work/demo', 'experts-lory'));
  assert.ok(stages.every((s) => s.name.startsWith('eval') || s.name.startsWith('inspect') || !s.summary), 'only evaluation stages print a summary');
  const noHeldout = planStages(parsePipeline(demo.replace(/^\s*heldout:.*$/m, ''), 'demo.yaml')).map((s) => s.name);
  assert.ok(!noHeldout.some((n) => n.startsWith('eval') || n.startsWith('inspect') || n === 'make-tasks'), `without held-out data: ${noHeldout}`);
  const dense = planStages(parsePipeline(demo.replace('model: { experts: 4 }', 'model: { experts: 1 }'), 'demo.yaml')).map((s) => s.name);
  assert.ok(dense.includes('eval-perplexity') && !dense.some((n) => n.startsWith('inspect')), 'dense runs are evaluated, never inspected');
});
