/**
 * `--tasks <file-or-folder...>`: every file named, and every *.jsonl of a folder named (sorted by
 * name), read as a task. The layout is detected from the first line's keys: lory's own format (a
 * header, or 'context') or one of the public layouts in layouts.ts.
 */
import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError, inputFileError } from '../../artifacts/index.js';
import { readJsonLines } from './jsonl.js';
import { detectPublicLayout, readPublicTask } from './layouts.js';
import { isHeader, readLoryTask } from './lory-format.js';
import type { Task } from './types.js';

/** The task files `paths` name: files as given, folders' *.jsonl sorted by name. */
export function taskFiles(paths: string[]): string[] {
  if (paths.length === 0) throw new InputError('no task file given; name task files or folders with --tasks');
  const files: string[] = [];
  for (const path of paths) {
    let folder: boolean;
    try {
      folder = statSync(path).isDirectory();
    } catch (error) {
      throw inputFileError(error, path, 'a task file (JSONL) or a folder of them');
    }
    if (!folder) {
      files.push(path);
      continue;
    }
    const found = readdirSync(path).filter((n) => n.endsWith('.jsonl')).sort();
    if (found.length === 0) throw new InputError(`${path}: holds no *.jsonl task file`);
    files.push(...found.map((n) => join(path, n)));
  }
  return files;
}

/** One task file, its layout detected. */
export function readTaskFile(file: string): Task {
  const lines = readJsonLines(file);
  const name = basename(file).replace(/\.jsonl$/, '');
  const first = lines[0];
  if (!first) throw new InputError(`${file}: holds no items; expected one JSON object a line`);
  if (isHeader(first.record) || 'context' in first.record) return checkScorable(readLoryTask(file, lines, name));
  const layout = detectPublicLayout(first.record);
  if (!layout) {
    throw new InputError(
      `${file}:${first.line}: not a task layout lory reads (keys: ${Object.keys(first.record).join(', ') || 'none'}); expected lory's {context, choices, gold} or {context, answers}, or HellaSwag, PIQA, ARC, BoolQ, WinoGrande`,
    );
  }
  return checkScorable(readPublicTask(file, lines, layout, name));
}

function checkScorable(t: Task): Task {
  if (t.items.length === 0) throw new InputError(`${t.file}: holds a header but no items`);
  if (t.items.every((i) => i.fewshot)) throw new InputError(`${t.file}: every item is a few-shot example ("fewshot": true); nothing to score`);
  return t;
}

/** Every task of `paths`; two files of one name in different folders are told apart by their folder ("ARC-Easy/test"). */
export function readTasks(paths: string[]): Task[] {
  const tasks = taskFiles(paths).map(readTaskFile);
  const named = new Map<string, Task[]>();
  for (const t of tasks) named.set(t.name, [...(named.get(t.name) ?? []), t]);
  for (const [name, same] of named) {
    if (same.length < 2) continue;
    const folders = same.map((t) => basename(dirname(t.file)));
    const clash = folders.findIndex((f, i) => folders.indexOf(f) !== i);
    if (clash >= 0) {
      const first = same[folders.indexOf(folders[clash]!)]!;
      throw new InputError(`${same[clash]!.file}: task name '${name}' is also ${first.file}'s; give each task its own name (the header's "name")`);
    }
    same.forEach((t, i) => (t.name = `${folders[i]}/${name}`));
  }
  return tasks;
}
