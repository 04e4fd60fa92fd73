/**
 * Tasks as `lory eval tasks` holds them, whatever file layout they came from (docs/tasks.md): a
 * multiple-choice item is a list of options, each a context and the continuation scored after it
 * (one shared context for most layouts; WinoGrande's options differ in context and share the
 * continuation); a generative item is a context and its accepted answers.
 */
export type TaskKind = 'multiple_choice' | 'generative';

/** The file layouts the reader detects. */
export type TaskLayout = 'lory' | 'hellaswag' | 'piqa' | 'arc' | 'boolq' | 'winogrande';

export interface ItemBase {
  /** 1-based line of the item in its file (for messages). */
  line: number;
  id?: string;
  /** In the few-shot pool and never scored. */
  fewshot: boolean;
}

export interface ChoiceOption {
  /** Text before the continuation (the item's context). */
  context: string;
  /** Text scored by the model, appended to the context exactly as written. */
  continuation: string;
}

export interface ChoiceItem extends ItemBase {
  options: ChoiceOption[];
  /** Index of the correct option. */
  gold: number;
}

export interface AnswerItem extends ItemBase {
  context: string;
  /** Accepted answers; answers[0] completes the item as a few-shot example. */
  answers: string[];
  /** Generation stops at the first of these strings (or EOS, or the token limit). */
  stop: string[];
}

interface TaskBase {
  name: string;
  /** The file it was read from, as given. */
  file: string;
  layout: TaskLayout;
  instruction?: string;
  description?: string;
  /** Other files the items came from (PIQA's labels file). */
  alsoRead?: string[];
}

export interface ChoiceTask extends TaskBase {
  kind: 'multiple_choice';
  items: ChoiceItem[];
}

export interface AnswerTask extends TaskBase {
  kind: 'generative';
  items: AnswerItem[];
}

export type Task = ChoiceTask | AnswerTask;

/** The text an item contributes as a solved few-shot example. */
export function solvedText(task: Task, index: number): string {
  if (task.kind === 'multiple_choice') {
    const item = task.items[index]!;
    const o = item.options[item.gold]!;
    return o.context + o.continuation;
  }
  const item = task.items[index]!;
  return item.context + item.answers[0]!;
}

export const LAYOUT_NAMES: Record<TaskLayout, string> = {
  lory: 'lory JSONL (context / choices or answers)',
  hellaswag: 'HellaSwag (ctx / endings / label)',
  piqa: 'PIQA (goal / sol1 / sol2)',
  arc: 'ARC (question / choices / answerKey)',
  boolq: 'BoolQ (question / passage / answer)',
  winogrande: 'WinoGrande (sentence / option1 / option2 / answer)',
};
