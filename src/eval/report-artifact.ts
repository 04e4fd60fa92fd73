/**
 * `--out dir` of `lory eval perplexity`: the report as an artifact directory (perplexity.json,
 * perplexity.md, a manifest naming the checkpoints and the held-out store), written atomically and
 * skipped when already up to date.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactInput, runStage } from '../artifacts/index.js';
import { perplexityJson, perplexityMarkdown } from './format.js';
import { evalPerplexity, prepareEval, type PerplexityOptions, type PerplexityReport } from './perplexity.js';

export const PERPLEXITY_REPORT_KIND = 'perplexity-report';
export const PERPLEXITY_REPORT_VERSION = 1;
export const PERPLEXITY_FILES = { json: 'perplexity.json', markdown: 'perplexity.md' } as const;

export async function evalPerplexityToDir(o: PerplexityOptions & { out: string; force?: boolean }): Promise<{ report: PerplexityReport; skipped: boolean }> {
  // The checkpoints actually evaluated (a damaged latest one falls back to an earlier one) are the inputs.
  const prepared = prepareEval(o);
  const result = await runStage<PerplexityReport>({
    out: o.out,
    kind: PERPLEXITY_REPORT_KIND,
    formatVersion: PERPLEXITY_REPORT_VERSION,
    inputs: [
      ...prepared.loaded.map(({ ckpt }, i) => artifactInput(`checkpoint${i}`, ckpt.dir, ckpt.manifest)),
      artifactInput('heldout', o.data, prepared.h.store.manifest),
    ],
    params: {
      by: o.by === undefined ? 'domain' : o.by,
      window: o.window ?? null,
      stride: o.stride ?? null,
      routing: o.routing ?? ['segment', 'prompt'],
      promptTokens: o.promptTokens ?? null,
    },
    force: o.force ?? false,
    build: async (dir) => {
      const report = await evalPerplexity(o, prepared);
      writeFileSync(join(dir, PERPLEXITY_FILES.json), perplexityJson(report));
      writeFileSync(join(dir, PERPLEXITY_FILES.markdown), perplexityMarkdown(report));
      return JSON.parse(perplexityJson(report)) as PerplexityReport;
    },
  });
  return { report: result.manifest.stats, skipped: result.skipped };
}
