/**
 * One task as the shared JSONL task format has it (docs/tasks.md): a header line
 * {"task": {name, kind, instruction?, description}}, then one multiple-choice item a line.
 */

export interface TaskItem {
  /** `<document id>#<unit index>`: where the item was taken from. */
  id: string;
  context: string;
  choices: string[];
  gold: number;
  /** In the few-shot pool: shown as an example, never scored. */
  fewshot?: boolean;
}

export interface TaskFile {
  name: string;
  description: string;
  instruction?: string;
  items: TaskItem[];
}

/** The file's bytes: fixed key order and one item a line, so equal tasks are equal files. */
export function taskJsonl(task: TaskFile): string {
  const header = { task: { name: task.name, kind: 'multiple_choice', ...(task.instruction ? { instruction: task.instruction } : {}), description: task.description } };
  const lines = [JSON.stringify(header)];
  for (const item of task.items) {
    lines.push(JSON.stringify({ id: item.id, context: item.context, choices: item.choices, gold: item.gold, ...(item.fewshot ? { fewshot: true } : {}) }));
  }
  return `${lines.join('\n')}\n`;
}
