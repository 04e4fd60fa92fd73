/**
 * `--out dir` of `lory eval perplexity`: the report as an artifact directory (perplexity.json,
 * perplexity.md, a manifest naming the checkpoints and the held-out store), written atomically and
 * skipped when already up to date.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactInput, readManifest, runStage } from '../artifacts/index.js';
import { TOKEN_STORE_KIND, TOKEN_STORE_VERSION } from '../data/token-store.js';
import { CHECKPOINT_KIND, CHECKPOINT_VERSION, resolveCheckpointDir } from '../train/checkpoint.js';
import { perplexityJson, perplexityMarkdown } from './format.js';
import { evalPerplexity, type PerplexityOptions, type PerplexityReport } from './perplexity.js';

export const PERPLEXITY_REPORT_KIND = 'perplexity-report';
export const PERPLEXITY_REPORT_VERSION = 1;
export const PERPLEXITY_FILES = { json: 'perplexity.json', markdown: 'perplexity.md' } as const;

export async function evalPerplexityToDir(o: PerplexityOptions & { out: string; force?: boolean }): Promise<{ report: PerplexityReport; skipped: boolean }> {
  const dirs = o.checkpoints.map((p) => resolveCheckpointDir(p, o.which ?? 'latest'));
  const result = await runStage<PerplexityReport>({
    out: o.out,
    kind: PERPLEXITY_REPORT_KIND,
    formatVersion: PERPLEXITY_REPORT_VERSION,
    inputs: [
      ...dirs.map((d, i) => artifactInput(`checkpoint${i}`, d, readManifest(d, CHECKPOINT_KIND, CHECKPOINT_VERSION))),
      artifactInput('heldout', o.data, readManifest(o.data, TOKEN_STORE_KIND, TOKEN_STORE_VERSION)),
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
      const report = await evalPerplexity(o);
      writeFileSync(join(dir, PERPLEXITY_FILES.json), perplexityJson(report));
      writeFileSync(join(dir, PERPLEXITY_FILES.markdown), perplexityMarkdown(report));
      return JSON.parse(perplexityJson(report)) as PerplexityReport;
    },
  });
  return { report: result.manifest.stats, skipped: result.skipped };
}
