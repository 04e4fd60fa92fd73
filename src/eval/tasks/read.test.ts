import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../data/testing.js';
import { drawExamples, promptPrefix, scoredItems } from './fewshot.js';
import { prefixes } from './plan.js';
import { readTaskFile, readTasks } from './read-tasks.js';
import type { ChoiceTask, Task } from './types.js';

const jsonl = (dir: string, name: string, records: unknown[]) => {
  const path = join(dir, name);
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return path;
};

/** Each item as [contexts…] → [continuations…], gold: what the scorer will see. */
const shape = (t: Task) =>
  t.kind === 'multiple_choice' ? t.items.map((i) => ({ contexts: i.options.map((o) => o.context), continuations: i.options.map((o) => o.continuation), gold: i.gold })) : t.items;

test('lory JSONL: the header names the task and its instruction; kind, stop strings and the few-shot pool as documented', () => {
  const dir = tempDir('tasks');
  const mc = readTaskFile(
    jsonl(dir, 'file-name.jsonl', [
      { task: { name: 'capitals', kind: 'multiple_choice', instruction: 'Answer.', description: 'hand-made' } },
      { id: 'fr', context: 'The capital of France is', choices: [' Paris', ' Rome'], gold: 0 },
      { context: 'Solved:', choices: [' a', ' b'], gold: 1, fewshot: true },
    ]),
  );
  assert.deepEqual([mc.name, mc.kind, mc.layout, mc.instruction, mc.description], ['capitals', 'multiple_choice', 'lory', 'Answer.', 'hand-made']);
  assert.deepEqual(shape(mc), [
    { contexts: ['The capital of France is', 'The capital of France is'], continuations: [' Paris', ' Rome'], gold: 0 },
    { contexts: ['Solved:', 'Solved:'], continuations: [' a', ' b'], gold: 1 },
  ]);
  assert.deepEqual([mc.items[0]!.id, mc.items[0]!.fewshot, mc.items[1]!.fewshot], ['fr', false, true]);
  const gen = readTaskFile(jsonl(dir, 'arith.jsonl', [{ context: '2+2=', answers: ['4', 'four'] }, { context: '3+3=', answers: ['6'], stop: ['.', '\n\n'] }]));
  assert.deepEqual([gen.name, gen.kind], ['arith', 'generative'], 'no header: the file name, and the kind from the items');
  assert.deepEqual(shape(gen), [
    { line: 1, fewshot: false, context: '2+2=', answers: ['4', 'four'], stop: ['\n'] },
    { line: 2, fewshot: false, context: '3+3=', answers: ['6'], stop: ['.', '\n\n'] },
  ]);
});

test('public layouts are detected and read as lm-evaluation-harness prompts them: HellaSwag, PIQA (with and without its labels file), ARC (both releases), BoolQ, WinoGrande', () => {
  const dir = tempDir('public');
  const hs = readTaskFile(
    jsonl(dir, 'hellaswag_val.jsonl', [
      { ind: 24, activity_label: 'Roof shingle removal', ctx_a: 'A man is sitting on a roof.', ctx_b: 'he', endings: ['is using wrap to wrap a pair of skis.', 'starts pulling up roofing on a roof.'], label: '1' },
      { activity_label: 'Home and Garden', ctx: 'How to clean a grill [title] Scrub it.', endings: ['[step] Use a brush.  Rinse.', 'Burn it.'], label: 0 },
    ]),
  );
  assert.equal(hs.layout, 'hellaswag');
  assert.deepEqual(shape(hs), [
    { contexts: Array(2).fill('Roof shingle removal: A man is sitting on a roof. He'), continuations: [' is using wrap to wrap a pair of skis.', ' starts pulling up roofing on a roof.'], gold: 1 },
    { contexts: Array(2).fill('Home and Garden: How to clean a grill. Scrub it.'), continuations: ['  Use a brush. Rinse.', ' Burn it.'], gold: 0 }, // the removed [step] leaves its space, as in lm-evaluation-harness
  ]);
  assert.equal(hs.items[0]!.id, '24');

  const piqa = readTaskFile(jsonl(dir, 'piqa.jsonl', [{ goal: 'Open a jar', sol1: 'Twist the lid.', sol2: 'Eat the lid.', label: 0 }]));
  assert.deepEqual([piqa.layout, shape(piqa)], ['piqa', [{ contexts: Array(2).fill('Question: Open a jar\nAnswer:'), continuations: [' Twist the lid.', ' Eat the lid.'], gold: 0 }]]);
  const original = jsonl(dir, 'valid.jsonl', [{ goal: 'g1', sol1: 'a', sol2: 'b' }, { goal: 'g2', sol1: 'c', sol2: 'd' }]);
  writeFileSync(join(dir, 'valid-labels.lst'), '1\n0\n');
  const fromLabels = readTaskFile(original) as ChoiceTask;
  assert.deepEqual(fromLabels.items.map((i) => i.gold), [1, 0], "labels from valid-labels.lst, line by line");
  assert.deepEqual(fromLabels.alsoRead, [join(dir, 'valid-labels.lst')]);

  const hf = readTaskFile(jsonl(dir, 'arc_hf.jsonl', [{ id: 'Mercury_1', question: 'Which is a gas?', choices: { text: ['ice', 'steam', 'rock'], label: ['A', 'B', 'C'] }, answerKey: 'B' }]));
  const ai2 = readTaskFile(jsonl(dir, 'arc_ai2.jsonl', [{ id: 'Q2', question: { stem: 'Which is hot?', choices: [{ text: 'sun', label: '1' }, { text: 'moon', label: '2' }] }, answerKey: '1' }]));
  assert.deepEqual([hf.layout, ai2.layout], ['arc', 'arc']);
  assert.deepEqual(shape(hf), [{ contexts: Array(3).fill('Question: Which is a gas?\nAnswer:'), continuations: [' ice', ' steam', ' rock'], gold: 1 }]);
  assert.deepEqual(shape(ai2), [{ contexts: Array(2).fill('Question: Which is hot?\nAnswer:'), continuations: [' sun', ' moon'], gold: 0 }]);

  const boolq = readTaskFile(jsonl(dir, 'boolq.jsonl', [{ question: 'is the sky blue', passage: 'The sky is blue.', answer: true }, { question: 'is ice hot', passage: 'Ice is cold.', answer: false }]));
  assert.deepEqual(shape(boolq), [
    { contexts: Array(2).fill('The sky is blue.\nQuestion: is the sky blue?\nAnswer:'), continuations: [' no', ' yes'], gold: 1 },
    { contexts: Array(2).fill('Ice is cold.\nQuestion: is ice hot?\nAnswer:'), continuations: [' no', ' yes'], gold: 0 },
  ]);

  const wino = readTaskFile(jsonl(dir, 'winogrande_dev.jsonl', [{ sentence: 'Sarah was a much better surgeon than Maria so _ always got the harder cases.', option1: 'Sarah', option2: 'Maria', answer: '1' }]));
  assert.deepEqual(shape(wino), [
    {
      contexts: ['Sarah was a much better surgeon than Maria so Sarah', 'Sarah was a much better surgeon than Maria so Maria'],
      continuations: [' always got the harder cases.', ' always got the harder cases.'],
      gold: 0,
    },
  ]);
});

test('a folder means its *.jsonl sorted by name; two files of one name are told apart by their folder', () => {
  const root = tempDir('folder');
  for (const sub of ['ARC-Easy', 'ARC-Challenge']) {
    mkdirSync(join(root, sub));
    jsonl(join(root, sub), 'test.jsonl', [{ question: 'q', choices: { text: ['a', 'b'], label: ['A', 'B'] }, answerKey: 'A' }]);
  }
  jsonl(join(root, 'ARC-Easy'), 'a-first.jsonl', [{ context: 'x', answers: ['y'] }]);
  writeFileSync(join(root, 'ARC-Easy', 'notes.txt'), 'not a task');
  const tasks = readTasks([join(root, 'ARC-Easy'), join(root, 'ARC-Challenge', 'test.jsonl')]);
  assert.deepEqual(tasks.map((t) => [t.name, t.layout]), [['a-first', 'lory'], ['ARC-Easy/test', 'arc'], ['ARC-Challenge/test', 'arc']]);
});

/** Six solved items "c<i>" + " g<i>", no few-shot pool marked. */
function sixItems(instruction?: string): ChoiceTask {
  return {
    name: 'six',
    file: 'six.jsonl',
    layout: 'lory',
    kind: 'multiple_choice',
    ...(instruction ? { instruction } : {}),
    items: Array.from({ length: 6 }, (_, i) => ({ line: i + 1, fewshot: false, options: [{ context: `c${i}`, continuation: ` g${i}` }, { context: `c${i}`, continuation: ' wrong' }], gold: 0 })),
  };
}

test('few-shot examples never include the scored item, are drawn without replacement, and the same seed gives the same prompts', () => {
  const task = sixItems();
  for (const k of [1, 3, 5]) {
    for (let i = 0; i < 6; i++) {
      const ex = drawExamples(task, i, k, 7);
      assert.equal(ex.length, k);
      assert.ok(!ex.includes(i), `item ${i} is not its own example (k=${k}): ${ex}`);
      assert.equal(new Set(ex).size, k, 'without replacement');
      assert.deepEqual(drawExamples(task, i, k, 7), ex, 'the same seed draws the same examples');
    }
  }
  // k = 5 takes the whole pool: every other item, in some order.
  for (let i = 0; i < 6; i++) assert.deepEqual([...drawExamples(task, i, 5, 1)].sort(), [0, 1, 2, 3, 4, 5].filter((j) => j !== i));
  const a = prefixes(task, scoredItems(task), 2, 1);
  assert.deepEqual(prefixes(task, scoredItems(task), 2, 1), a, 'same seed, same prompts');
  assert.notDeepEqual(prefixes(task, scoredItems(task), 2, 2), a, 'another seed, other prompts');
  // A marked pool: only its items are examples, and only the others are scored.
  const marked: ChoiceTask = { ...task, items: task.items.map((it, i) => ({ ...it, fewshot: i >= 4 })) };
  assert.deepEqual(scoredItems(marked), [0, 1, 2, 3]);
  for (let i = 0; i < 4; i++) assert.deepEqual([...drawExamples(marked, i, 2, 3)].sort(), [4, 5]);
  assert.throws(() => drawExamples(marked, 0, 3, 0), (e: Error) => e.name === 'InputError' && /3-shot prompts need 3 examples, but the few-shot pool of task 'six' holds 2/.test(e.message));
});

test('a k-shot prompt is [instruction + "\\n\\n"] + the examples (context + gold continuation) joined by "\\n\\n", then "\\n\\n" + the context', () => {
  const task = sixItems('Pick one.');
  const ex = drawExamples(task, 2, 2, 5);
  assert.equal(promptPrefix(task, ex), `Pick one.\n\nc${ex[0]} g${ex[0]}\n\nc${ex[1]} g${ex[1]}\n\n`);
  assert.equal(promptPrefix(task, []), 'Pick one.\n\n');
  assert.equal(promptPrefix(sixItems(), []), '', '0-shot without an instruction: the context alone');
});
