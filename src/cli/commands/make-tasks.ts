/** `lory make-tasks`: held-out token store → multiple-choice tasks (continuation, domain, code cloze), offline. */
import type { Command } from 'commander';
import { DEFAULTS, makeTasks, type TasksStats } from '../../tasks/make-tasks.js';
import { runStageCommand } from '../stage-command.js';
import { nonNegativeInt } from './build-batches.js';
import { positiveInt } from './prepare.js';

interface Flags {
  out: string;
  seed: number;
  items: number;
  fewshot: number;
  maxContextChars: number;
  maxContextTokens?: number;
  force?: boolean;
  json?: boolean;
}

function summary(s: TasksStats): string {
  const rows = Object.entries(s.tasks).map(([name, t]) => `${name.padEnd(13)} ${String(t.items).padStart(4)} items + ${t.fewshot} few-shot, from ${t.documents} documents (${Object.entries(t.groups).map(([g, n]) => `${g} ${n}`).join(', ')})`);
  for (const [name, why] of Object.entries(s.skipped)) rows.push(`${name.padEnd(13)} skipped: ${why}`);
  return rows.join('\n');
}

export function registerMakeTasks(program: Command): void {
  program
    .command('make-tasks')
    .description('build multiple-choice tasks from held-out text, offline: continuation choice, in-context domain classification, code line cloze')
    .argument('<heldout>', 'token store of held-out text (made by `lory prepare`), with a "domain" per document')
    .requiredOption('-o, --out <dir>', 'the task folder to write (continuation.jsonl, domain.jsonl, code-cloze.jsonl, README.md)')
    .option('--seed <n>', 'seed of every choice made (same store and seed, same files)', nonNegativeInt, DEFAULTS.seed)
    .option('--items <n>', 'scored items per task (fewer when the store has fewer)', positiveInt, DEFAULTS.items)
    .option('--fewshot <n>', 'few-shot pool items per task, from documents kept apart from the scored ones', nonNegativeInt, DEFAULTS.fewshot)
    .option('--max-context-chars <n>', 'longest context, cut on the left at a sentence or line boundary', positiveInt, DEFAULTS.maxContextChars)
    .option('--max-context-tokens <n>', "also fit each context plus its longest choice into n tokens of the store's tokenizer (a model's window)", positiveInt)
    .option('--force', 'rebuild even when up to date')
    .option('--json', 'print the statistics as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ lory make-tasks work/heldout -o work/tasks
  $ lory make-tasks work/demo/heldout -o work/tasks --items 40 --fewshot 8 --max-context-tokens 128
  $ lory make-tasks work/heldout -o work/tasks-seed1 --seed 1 --force

Continuation: a prefix and its true next sentence (prose) or line (code) against 3 from other
documents of the same domain. Domain: "Text: <snippet>\\nDomain:" with every domain as a choice;
items marked "fewshot" are the k-shot examples. Code cloze: a Go/Python file's next line against 3
other lines of the same file. Sentences end at a newline, or at . ! ? before a space and a capital.`,
    )
    .action(async (heldout: string, flags: Flags) => {
      await runStageCommand({ name: 'make-tasks', startText: 'reading the held-out store' }, async (progress, signal) => {
        const result = await makeTasks({
          store: heldout,
          out: flags.out,
          seed: flags.seed,
          items: flags.items,
          fewshot: flags.fewshot,
          maxContextChars: flags.maxContextChars,
          maxContextTokens: flags.maxContextTokens,
          force: flags.force,
          signal,
        });
        progress.succeed(result.skipped ? `${flags.out} is up to date (--force rebuilds it)` : `wrote ${flags.out}`);
        const s = result.manifest.stats;
        process.stdout.write(flags.json ? `${JSON.stringify(s, null, 2)}\n` : `${summary(s)}\n`);
      });
    });
}
