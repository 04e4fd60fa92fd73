/**
 * `lory make-tasks`: held-out token store → a task set (continuation.jsonl, domain.jsonl,
 * code-cloze.jsonl, README.md), deterministic by seed, built offline from the store's own text.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactInput, InputError, InterruptedError, runStage, type StageResult } from '../artifacts/index.js';
import { loadTokenizer } from '../data/tokenizer.js';
import { openTokenStore, type TokenStore } from '../data/token-store.js';
import { fitByCharacters, type Built, type BuildSettings, type Fitter, type TaskStats } from './assemble.js';
import { buildCodeCloze } from './code-cloze.js';
import { buildContinuation } from './continuation.js';
import { readDocuments, type TaskDocument } from './documents.js';
import { buildDomain, domainNames } from './domain.js';
import { fitByTokens } from './fit.js';
import { readmeText } from './readme.js';
import { taskJsonl } from './task-file.js';

export const TASKS_KIND = 'task-set';
export const TASKS_VERSION = 1;

export const DEFAULTS = { seed: 0, items: 200, fewshot: 16, maxContextChars: 600 };

export interface MakeTasksOptions {
  store: string;
  out: string;
  seed?: number;
  /** Scored items per task (fewer when the store has fewer). */
  items?: number;
  /** Few-shot pool items per task. */
  fewshot?: number;
  maxContextChars?: number;
  /** Context plus its longest choice, in the store's tokens; no limit when undefined. */
  maxContextTokens?: number;
  force?: boolean;
  signal?: AbortSignal;
}

export interface TasksStats {
  documents: number;
  domains: string[];
  tasks: Record<string, TaskStats & { file: string }>;
  /** Tasks not made, with the reason. */
  skipped: Record<string, string>;
}

const BUILDERS: Array<[string, (docs: TaskDocument[], s: BuildSettings) => Promise<Built>]> = [
  ['continuation', buildContinuation],
  ['domain', buildDomain],
  ['code-cloze', buildCodeCloze],
];

function checkCount(flag: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new InputError(`${flag} must be an integer of at least ${min}, got ${value}`);
}

/** Continuation distractors must share the gold's domain: a store without domains cannot give them. */
function checkDomains(store: TokenStore, path: string): void {
  if (store.domains().some((d) => d !== undefined)) return;
  throw new InputError(`${path}: no document has a "domain" field; continuation distractors must come from documents of the same domain (prepare a corpus whose lines carry "domain")`);
}

export async function makeTasks(o: MakeTasksOptions): Promise<StageResult<TasksStats>> {
  const params = {
    seed: o.seed ?? DEFAULTS.seed,
    items: o.items ?? DEFAULTS.items,
    fewshot: o.fewshot ?? DEFAULTS.fewshot,
    maxContextChars: o.maxContextChars ?? DEFAULTS.maxContextChars,
    maxContextTokens: o.maxContextTokens ?? null,
  };
  checkCount('--seed', params.seed, 0);
  checkCount('--items', params.items, 1);
  checkCount('--fewshot', params.fewshot, 0);
  checkCount('--max-context-chars', params.maxContextChars, 1);
  if (params.maxContextTokens !== null) checkCount('--max-context-tokens', params.maxContextTokens, 1);
  const store = openTokenStore(o.store);
  checkDomains(store, o.store);

  return runStage<TasksStats>({
    out: o.out,
    kind: TASKS_KIND,
    formatVersion: TASKS_VERSION,
    inputs: [artifactInput('heldout', o.store, store.manifest)],
    params,
    force: o.force,
    build: async (dir) => {
      const docs = readDocuments(store);
      const fit: Fitter = params.maxContextTokens === null ? fitByCharacters : fitByTokens(loadTokenizer(store.tokenizerPath, store.stats.eosToken), params.maxContextTokens);
      const settings: BuildSettings = { ...params, fit };
      const stats: TasksStats = { documents: docs.length, domains: domainNames(docs), tasks: {}, skipped: {} };
      const described: Parameters<typeof readmeText>[0]['tasks'] = {};
      for (const [name, build] of BUILDERS) {
        if (o.signal?.aborted) throw new InterruptedError('make-tasks interrupted; nothing was written');
        const built = await build(docs, settings);
        if ('skipped' in built) {
          stats.skipped[name] = built.skipped;
          continue;
        }
        const file = `${name}.jsonl`;
        writeFileSync(join(dir, file), taskJsonl(built.task));
        stats.tasks[name] = { file, ...built.stats };
        described[name] = { ...stats.tasks[name]!, description: built.task.description };
      }
      if (Object.keys(stats.tasks).length === 0) {
        throw new InputError(`${o.store}: no task could be made: ${Object.entries(stats.skipped).map(([n, why]) => `${n}: ${why}`).join('; ')}`);
      }
      writeFileSync(join(dir, 'README.md'), readmeText({ storeHash: store.manifest.contentHash, documents: docs.length, domains: stats.domains, params, tasks: described, skipped: stats.skipped }));
      return stats;
    },
  });
}
