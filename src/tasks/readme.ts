/** The README.md a task set carries: what each task is, how many items, and why any task is missing. */
import type { TaskStats } from './assemble.js';

export interface ReadmeInput {
  storeHash: string;
  documents: number;
  domains: string[];
  params: { seed: number; items: number; fewshot: number; maxContextChars: number; maxContextTokens: number | null };
  tasks: Record<string, TaskStats & { file: string; description: string }>;
  skipped: Record<string, string>;
}

const groups = (g: Record<string, number>) =>
  Object.entries(g)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');

export function readmeText(r: ReadmeInput): string {
  const p = r.params;
  const lines = [
    '# Tasks made by `lory make-tasks`',
    '',
    `From a held-out token store (contentHash \`${r.storeHash.slice(0, 16)}…\`, ${r.documents} documents, domains: ${r.domains.join(', ') || 'none'}), ` +
      `with \`--seed ${p.seed} --items ${p.items} --fewshot ${p.fewshot} --max-context-chars ${p.maxContextChars}${p.maxContextTokens !== null ? ` --max-context-tokens ${p.maxContextTokens}` : ''}\`. ` +
      'The same store and options give byte-identical task files. The format is lory\'s task JSONL (a header line, then one multiple-choice item a line); ' +
      '`lory eval tasks` reads them (`--tasks <this folder>`).',
    '',
    '| task | file | scored items | few-shot pool | documents | items per domain / language |',
    '| --- | --- | ---: | ---: | ---: | --- |',
    ...Object.entries(r.tasks).map(([name, t]) => `| ${name} | \`${t.file}\` | ${t.items} | ${t.fewshot} | ${t.documents} | ${groups(t.groups)} |`),
    '',
    ...Object.entries(r.tasks).flatMap(([name, t]) => [`- **${name}**: ${t.description}`]),
  ];
  const skipped = Object.entries(r.skipped);
  if (skipped.length > 0) lines.push('', 'Not made:', '', ...skipped.map(([name, why]) => `- **${name}**: ${why}.`));
  lines.push(
    '',
    'Few-shot pool items (`"fewshot": true`) come from documents set apart before the scored items are drawn (one per domain first), so no example shares a document with a scored item. ' +
      'Items are drawn round-robin over domains, then over documents, so no domain or long document fills a task.',
  );
  return `${lines.join('\n')}\n`;
}
