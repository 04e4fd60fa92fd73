/**
 * `--out dir` of `lory eval tasks`: the report as an artifact directory (tasks.json, tasks.md, a
 * manifest naming the checkpoints and the task files by hash), written atomically and skipped when
 * already up to date.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactInput, fileInput, runStage } from '../../artifacts/index.js';
import { evalTasks, prepareTasks, type TasksOptions, type TasksReport } from './evaluate.js';
import { tasksJson, tasksMarkdown } from './report.js';

export const TASKS_REPORT_KIND = 'tasks-report';
export const TASKS_REPORT_VERSION = 1;
export const TASKS_FILES = { json: 'tasks.json', markdown: 'tasks.md' } as const;

export async function evalTasksToDir(o: TasksOptions & { out: string; force?: boolean }): Promise<{ report: TasksReport; skipped: boolean }> {
  const prepared = await prepareTasks(o);
  const files = prepared.tasks.flatMap((t) => [t.file, ...(t.alsoRead ?? [])]);
  const result = await runStage<TasksReport>({
    out: o.out,
    kind: TASKS_REPORT_KIND,
    formatVersion: TASKS_REPORT_VERSION,
    inputs: [
      // The checkpoints actually evaluated (a damaged latest one falls back to an earlier one).
      ...prepared.loaded.map(({ ckpt }, i) => artifactInput(`checkpoint${i}`, ckpt.dir, ckpt.manifest)),
      ...(await Promise.all(files.map((f, i) => fileInput(`tasks${i}`, f)))),
    ],
    params: {
      shots: prepared.shots,
      seed: prepared.seed,
      routing: o.routing ?? ['segment', 'prompt'],
      maxNewTokens: prepared.maxNewTokens,
      limit: o.limit ?? null,
    },
    force: o.force ?? false,
    build: async (dir) => {
      const report = await evalTasks(o, prepared);
      writeFileSync(join(dir, TASKS_FILES.json), tasksJson(report));
      writeFileSync(join(dir, TASKS_FILES.markdown), tasksMarkdown(report));
      return JSON.parse(tasksJson(report)) as TasksReport;
    },
  });
  return { report: result.manifest.stats, skipped: result.skipped };
}
