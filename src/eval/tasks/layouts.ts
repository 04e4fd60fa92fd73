/**
 * Readers for the public task layouts a user is likely to have on disk, each turned into lory's
 * item shape with the prompt of EleutherAI's lm-evaluation-harness for that task (docs/tasks.md):
 *
 *   HellaSwag   {activity_label, ctx | ctx_a+ctx_b, endings, label}  "<label>: <ctx>" + " <ending>"
 *   PIQA        {goal, sol1, sol2, label}  "Question: <goal>\nAnswer:" + " <sol>"; without 'label',
 *               the labels come from <file>-labels.lst beside it (the original release)
 *   ARC         {question, choices: {text, label}, answerKey} (Hugging Face) or
 *               {question: {stem, choices: [{text, label}]}, answerKey} (AI2's release)
 *               "Question: <question>\nAnswer:" + " <choice>"
 *   BoolQ       {question, passage, answer}  "<passage>\nQuestion: <question>?\nAnswer:" + " no" | " yes"
 *   WinoGrande  {sentence, option1, option2, answer}  partial scoring: the options differ in context
 *               (the sentence up to the blank, filled) and share the continuation (the rest)
 */
import { existsSync } from 'node:fs';
import { InputError, readInputFile } from '../../artifacts/index.js';
import { Fields, type JsonLine } from './jsonl.js';
import type { ChoiceItem, ChoiceOption, ChoiceTask, TaskLayout } from './types.js';

type PublicLayout = Exclude<TaskLayout, 'lory'>;

/** The public layout a record is in, by its keys; undefined when none fits. */
export function detectPublicLayout(r: Record<string, unknown>): PublicLayout | undefined {
  const has = (...keys: string[]) => keys.every((k) => k in r);
  if (has('endings') && (has('ctx') || has('ctx_a'))) return 'hellaswag';
  if (has('goal', 'sol1', 'sol2')) return 'piqa';
  if (has('question', 'answerKey')) return 'arc';
  if (has('question', 'passage', 'answer')) return 'boolq';
  if (has('sentence', 'option1', 'option2')) return 'winogrande';
  return undefined;
}

const same = (context: string, continuations: string[]): ChoiceOption[] => continuations.map((c) => ({ context, continuation: c }));

/** lm-evaluation-harness's HellaSwag clean-up of WikiHow artefacts ("[title]", "[header]", double spaces), Python's replace-all semantics. */
export function hellaswagText(text: string): string {
  return text.trim().replace(/ \[title\]/g, '. ').replace(/\[.*?\]/g, '').replace(/ {2}/g, ' ');
}

/** Python's str.capitalize(): the first character upper case, the rest lower. */
const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();

function hellaswag(f: Fields): Omit<ChoiceItem, 'line' | 'fewshot'> {
  const ctx = f.has('ctx_a') ? `${f.string('ctx_a')} ${capitalize(f.string('ctx_b', "a string (with 'ctx_a')"))}` : f.string('ctx');
  const label = f.has('activity_label') ? f.string('activity_label') : '';
  const endings = f.texts('endings', 2);
  const gold = f.index('label', endings.length, `the index of the right ending (0 to ${endings.length - 1}); a test split without labels cannot be scored`);
  return { options: same(hellaswagText(label ? `${label}: ${ctx}` : ctx), endings.map((e) => ` ${hellaswagText(e)}`)), gold };
}

function piqa(f: Fields, label: number | undefined, labelsFile: string): Omit<ChoiceItem, 'line' | 'fewshot'> {
  const goal = f.string('goal');
  const sols = [f.text('sol1'), f.text('sol2')];
  let gold: number;
  if (f.has('label')) gold = f.index('label', 2, '0 (sol1) or 1 (sol2)');
  else {
    if (label === undefined) throw new InputError(`${f.where}: field 'label' is missing and there is no ${labelsFile} beside the file; expected 0 (sol1) or 1 (sol2)`);
    gold = label;
  }
  return { options: same(`Question: ${goal}\nAnswer:`, sols.map((s) => ` ${s}`)), gold };
}

function arc(f: Fields): Omit<ChoiceItem, 'line' | 'fewshot'> {
  const q = f.record.question;
  let question: string;
  let texts: unknown;
  let labels: unknown;
  if (q !== null && typeof q === 'object' && !Array.isArray(q)) {
    // AI2's release: question.stem and question.choices [{text, label}].
    const qf = new Fields(f.file, f.line, q as Record<string, unknown>);
    question = qf.string('stem', "a string (the question's text, 'question.stem')");
    const list = (q as { choices?: unknown }).choices;
    if (!Array.isArray(list) || list.length < 2 || !list.every((c) => c && typeof c === 'object')) qf.fail('choices', "an array of 2 or more {text, label} ('question.choices')");
    texts = (list as Array<{ text?: unknown }>).map((c) => c.text);
    labels = (list as Array<{ label?: unknown }>).map((c) => c.label);
  } else {
    question = f.string('question', "a string, or AI2's {stem, choices}");
    const c = f.record.choices;
    if (c === null || typeof c !== 'object' || Array.isArray(c)) f.fail('choices', 'an object {text: [...], label: [...]}');
    texts = (c as { text?: unknown }).text;
    labels = (c as { label?: unknown }).label;
  }
  const strings = (v: unknown, min: number) => Array.isArray(v) && v.length >= min && v.every((x) => typeof x === 'string' && x !== '');
  if (!strings(texts, 2)) throw new InputError(`${f.where}: field 'choices' has no text list of 2 or more non-empty strings; expected {text: [...], label: [...]}`);
  if (!strings(labels, 0) || (labels as string[]).length !== (texts as string[]).length) throw new InputError(`${f.where}: field 'choices' has ${(texts as string[]).length} texts but labels ${JSON.stringify(labels)}; expected one label per text`);
  const key = f.string('answerKey');
  const gold = (labels as string[]).indexOf(key);
  if (gold < 0) f.fail('answerKey', `one of the choice labels ${(labels as string[]).join(', ')}`);
  return { options: same(`Question: ${question}\nAnswer:`, (texts as string[]).map((t) => ` ${t}`)), gold };
}

function boolq(f: Fields): Omit<ChoiceItem, 'line' | 'fewshot'> {
  const passage = f.string('passage');
  const question = f.string('question');
  const answer = f.boolean('answer');
  return { options: same(`${passage}\nQuestion: ${question}?\nAnswer:`, [' no', ' yes']), gold: answer ? 1 : 0 };
}

function winogrande(f: Fields): Omit<ChoiceItem, 'line' | 'fewshot'> {
  const sentence = f.string('sentence');
  const blank = sentence.indexOf('_');
  if (blank < 0) f.fail('sentence', "a sentence with a blank '_' for the options");
  const rest = sentence.slice(blank + 1).trim();
  if (rest === '') f.fail('sentence', "text after the blank '_' (the part both options are scored on)");
  const options = [f.text('option1'), f.text('option2')];
  const gold = f.index('answer', 2, '"1" or "2" (the right option); a test split without answers cannot be scored', 1);
  return { options: options.map((o) => ({ context: sentence.slice(0, blank) + o, continuation: ` ${rest}` })), gold };
}

/** PIQA's original labels file (one 0 or 1 a line) beside `file`, when there is one. */
function piqaLabels(file: string, labelsFile: string): number[] | undefined {
  if (!existsSync(labelsFile)) return undefined;
  const lines = readInputFile(labelsFile).toString('utf8').split('\n').map((l) => l.trim());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.map((l, i) => {
    if (l !== '0' && l !== '1') throw new InputError(`${labelsFile}:${i + 1}: is ${JSON.stringify(l)}; expected 0 or 1 (the label of ${file}'s line ${i + 1})`);
    return Number(l);
  });
}

/** The items of `lines` of `file` in `layout`; every line must be in that layout. */
export function readPublicTask(file: string, lines: JsonLine[], layout: PublicLayout, name: string): ChoiceTask {
  const labelsFile = file.replace(/\.jsonl$/, '') + '-labels.lst';
  const labels = layout === 'piqa' ? piqaLabels(file, labelsFile) : undefined;
  if (labels && labels.length !== lines.length) throw new InputError(`${labelsFile}: holds ${labels.length} labels; expected one per line of ${file} (${lines.length})`);
  const items = lines.map((l, i): ChoiceItem => {
    const f = new Fields(file, l.line, l.record);
    const other = detectPublicLayout(l.record);
    if (other !== layout) throw new InputError(`${f.where}: is not in the ${layout} layout of line ${lines[0]!.line} (keys: ${Object.keys(l.record).join(', ')})`);
    const id = f.has('id') || f.has('ind') ? String(f.record.id ?? f.record.ind) : undefined;
    const read =
      layout === 'hellaswag' ? hellaswag(f) : layout === 'piqa' ? piqa(f, labels?.[i], labelsFile) : layout === 'arc' ? arc(f) : layout === 'boolq' ? boolq(f) : winogrande(f);
    return { line: l.line, ...(id !== undefined ? { id } : {}), fewshot: false, ...read };
  });
  return { name, file, layout, kind: 'multiple_choice', items, ...(labels ? { alsoRead: [labelsFile] } : {}) };
}
