/** The task report as Markdown (stdout, tasks.md) and JSON. */
import { fixed, int, pct, reportJson, resultLabel, table } from '../format.js';
import type { TaskInfo, TaskScore, TasksReport, TasksResult } from './evaluate.js';
import type { Mean } from './metrics.js';

const withSe = (m: Mean | undefined) => (m ? `${fixed(m.value, 4)} ± ${fixed(m.stderr, 4)}` : '—');
const change = (x: number, base: number) => (base > 0 && Number.isFinite(x) ? ` (${pct(x / base - 1)})` : '');
const column = (task: string, k: number) => `${task} ${k}-shot`;

export const SCORING_NOTE =
  'Multiple choice: each choice\'s continuation scored by log-likelihood after the context; **acc** picks the highest total log-likelihood, ' +
  '**acc_norm** the highest log-likelihood per UTF-8 byte of the continuation. Generative: greedy decoding until a stop string, EOS or the token limit; ' +
  '**exact match** of the trimmed answer, and SQuAD token **F1**. The side-by-side table and the averages use **acc_norm** (multiple choice) and ' +
  '**exact match** (generative); ± is the standard error over items (for the average, √Σse² / tasks).';

function tasksTable(tasks: TaskInfo[]): string {
  const rows = tasks.map((t) => [t.name, t.format, t.kind.replace('_', ' '), int(t.items), t.fewshotItems > 0 ? `${int(t.fewshotItems)} marked items` : 'every other item', t.file]);
  return table(['task', 'format (detected)', 'kind', 'items scored', 'few-shot pool', 'file'], rows, ['l', 'l', 'l', 'r', 'l', 'l']);
}

/** One line per checkpoint and routing, one column per task and shot count and the averages; change against the first line. */
/** The checkpoints side by side: one row per task and routing, with the average (the `lory run` summary). */
export function comparison(report: TasksReport): string {
  const base = report.results[0]!;
  const cols = base.scores.map((s) => ({ task: s.task, shots: s.shots }));
  const cell = (r: TasksResult, m: Mean, b: Mean) => withSe(m) + (r === base ? '' : change(m.value, b.value));
  const rows = report.results.map((r) => [
    resultLabel(r),
    ...cols.map(({ task, shots }) => {
      const s = r.scores.find((x) => x.task === task && x.shots === shots)!;
      const b = base.scores.find((x) => x.task === task && x.shots === shots)!;
      return cell(r, s.summary, b.summary);
    }),
    ...r.average.map((a, i) => cell(r, a.summary, base.average[i]!.summary)),
  ]);
  const header = ['checkpoint', ...cols.map((c) => column(c.task, c.shots)), ...base.average.map((a) => `average ${a.shots}-shot`)];
  const title = report.results.length > 1 ? 'Side by side (acc_norm / exact match; relative change against the first line)' : 'Summary (acc_norm / exact match)';
  return [`### ${title}`, '', table(header, rows, ['l', ...header.slice(1).map(() => 'r' as const)])].join('\n');
}

function stopped(s: TaskScore): string {
  return Object.entries(s.stoppedBy ?? {})
    .map(([why, n]) => `${why} ${int(n)}`)
    .join(', ');
}

/** Every checkpoint's numbers on one task. */
function detail(report: TasksReport, t: TaskInfo): string {
  const lines = report.results.flatMap((r) => r.scores.filter((s) => s.task === t.name).map((s) => ({ r, s })));
  const choice = t.kind === 'multiple_choice';
  const header = choice ? ['checkpoint', 'shots', 'items', 'acc', 'acc_norm', 'truncated', 'self-routed'] : ['checkpoint', 'shots', 'items', 'exact match', 'F1', 'truncated', 'stopped by'];
  const rows = lines.map(({ r, s }) =>
    choice
      ? [resultLabel(r), String(s.shots), int(s.items), withSe(s.acc), withSe(s.accNorm), int(s.truncated), s.selfRouted === undefined ? '—' : int(s.selfRouted)]
      : [resultLabel(r), String(s.shots), int(s.items), withSe(s.exactMatch), withSe(s.f1), int(s.truncated), stopped(s)],
  );
  return [`### ${t.name} — ${t.format}, ${t.kind.replace('_', ' ')}${t.description ? ` (${t.description})` : ''}`, '', table(header, rows, ['l', 'r', 'r', 'r', 'r', 'r', choice ? 'r' : 'l'])].join('\n');
}

export function tasksMarkdown(report: TasksReport): string {
  const anySelf = report.results.some((r) => r.routing === 'segment');
  const parts = [
    `## Tasks (${report.shots.map((k) => `${k}-shot`).join(', ')}; few-shot seed ${report.seed})`,
    '',
    SCORING_NOTE,
    '',
    tasksTable(report.tasks),
    '',
    comparison(report),
    ...report.tasks.flatMap((t) => ['', detail(report, t)]),
    '',
    'truncated: items whose context was cut from the left to fit the model\'s window.' +
      (anySelf ? ' self-routed (segment routing): items with a choice whose continuation begins inside the first segment, which is routed with its own mean (the paper\'s exception) and so saw continuation tokens; prompt routing decides from the context alone.' : '') +
      (report.tasks.some((t) => t.kind === 'generative') ? ` Generation stops at ${report.maxNewTokens} new tokens at most.` : ''),
  ];
  return `${parts.join('\n')}\n`;
}

export const tasksJson = (report: TasksReport): string => reportJson(report);
