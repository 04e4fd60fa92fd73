/**
 * lory's own task format (docs/tasks.md, shared with `lory make-tasks`): an optional header line
 * {"task": {name, kind, instruction, description}} then one item a line, multiple choice
 * {context, choices, gold} or generative {context, answers, stop}; "fewshot": true puts an item in
 * the few-shot pool.
 */
import { InputError } from '../../artifacts/index.js';
import { Fields, jsonType, type JsonLine } from './jsonl.js';
import type { AnswerItem, ChoiceItem, Task, TaskKind } from './types.js';

export const DEFAULT_STOP = ['\n'];
const KINDS: TaskKind[] = ['multiple_choice', 'generative'];
const HEADER_FIELDS = new Set(['name', 'kind', 'instruction', 'description']);

interface Header {
  name?: string;
  kind?: TaskKind;
  instruction?: string;
  description?: string;
}

export const isHeader = (record: Record<string, unknown>) => Object.keys(record).length === 1 && 'task' in record;

function readHeader(file: string, l: JsonLine): Header {
  const where = `${file}:${l.line}`;
  const t = l.record.task;
  if (t === null || typeof t !== 'object' || Array.isArray(t)) throw new InputError(`${where}: field 'task' is ${jsonType(t)}; expected an object {name, kind, instruction, description}`);
  const h = t as Record<string, unknown>;
  for (const k of Object.keys(h)) if (!HEADER_FIELDS.has(k)) throw new InputError(`${where}: field 'task.${k}' is not a header field; expected name, kind, instruction or description`);
  const f = new Fields(file, l.line, h);
  const name = f.has('name') ? f.text('name', 'a non-empty string (the task name)') : undefined;
  if (name !== undefined && /[\n|]/.test(name)) f.fail('name', 'a name without line breaks or |');
  const kind = f.has('kind') ? f.string('kind') : undefined;
  if (kind !== undefined && !KINDS.includes(kind as TaskKind)) f.fail('kind', "'multiple_choice' or 'generative'");
  return {
    ...(name !== undefined ? { name } : {}),
    ...(kind !== undefined ? { kind: kind as TaskKind } : {}),
    ...(f.has('instruction') ? { instruction: f.string('instruction') } : {}),
    ...(f.has('description') ? { description: f.string('description') } : {}),
  };
}

function itemKind(f: Fields): TaskKind {
  const choices = f.has('choices');
  const answers = f.has('answers');
  if (choices && answers) throw new InputError(`${f.where}: has both 'choices' and 'answers'; expected one (multiple choice or generative)`);
  if (!choices && !answers) throw new InputError(`${f.where}: field 'choices' (multiple choice) or 'answers' (generative) is missing`);
  return choices ? 'multiple_choice' : 'generative';
}

function choiceItem(f: Fields): ChoiceItem {
  const context = f.string('context');
  const choices = f.texts('choices', 2);
  const gold = f.index('gold', choices.length, `an integer index into 'choices' (0 to ${choices.length - 1})`);
  if (typeof f.record.gold !== 'number') f.fail('gold', `an integer index into 'choices' (0 to ${choices.length - 1})`);
  const id = f.optionalId();
  return { line: f.line, ...(id !== undefined ? { id } : {}), fewshot: f.optionalBoolean('fewshot'), options: choices.map((continuation) => ({ context, continuation })), gold };
}

function answerItem(f: Fields): AnswerItem {
  const context = f.string('context');
  const answers = f.texts('answers', 1);
  const stop = f.has('stop') ? f.texts('stop', 1) : DEFAULT_STOP;
  const id = f.optionalId();
  return { line: f.line, ...(id !== undefined ? { id } : {}), fewshot: f.optionalBoolean('fewshot'), context, answers, stop };
}

/** The task in `lines` of `file`; `name` unless the header names it. */
export function readLoryTask(file: string, lines: JsonLine[], name: string): Task {
  const first = lines[0];
  const header = first && isHeader(first.record) ? readHeader(file, first) : {};
  const body = first && isHeader(first.record) ? lines.slice(1) : lines;
  let kind = header.kind;
  let kindFrom = 'the header';
  const choices: ChoiceItem[] = [];
  const answers: AnswerItem[] = [];
  for (const l of body) {
    if (isHeader(l.record)) throw new InputError(`${file}:${l.line}: a header line ({"task": …}) may only be the first line`);
    const f = new Fields(file, l.line, l.record);
    const k = itemKind(f);
    if (kind === undefined) {
      kind = k;
      kindFrom = `line ${l.line}`;
    } else if (k !== kind) {
      throw new InputError(`${f.where}: a ${k.replace('_', '-')} item ('${k === 'generative' ? 'answers' : 'choices'}'), but the task is ${kind.replace('_', '-')} (${kindFrom})`);
    }
    if (k === 'multiple_choice') choices.push(choiceItem(f));
    else answers.push(answerItem(f));
  }
  const base = { name: header.name ?? name, file, layout: 'lory' as const, ...(header.instruction !== undefined ? { instruction: header.instruction } : {}), ...(header.description !== undefined ? { description: header.description } : {}) };
  return kind === 'generative' ? { ...base, kind, items: answers } : { ...base, kind: 'multiple_choice', items: choices };
}
