/**
 * `lory inspect-experts`: routing statistics of a Lory checkpoint on labelled held-out documents,
 * written as an artifact directory (atomically, with a manifest):
 *   routing-stats.json        every statistic of stats.ts, per layer
 *   heatmap.{svg,png}          mean routing weight per (layer, domain, expert)
 *   utilisation.{svg,png}      share of segments with weight > 2/E per (layer, expert)
 *   specialisation.{svg,png}   specialisation per layer next to its shuffled-label chance level
 *   report.html               all of it in one self-contained page
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { artifactInput, InputError, runStage, toolVersion } from '../artifacts/index.js';
import { checkTokenizer, openHeldOut } from '../eval/heldout.js';
import { heatmapSpec, specialisationSpec, utilisationSpec } from '../report/figures.js';
import { reportHtml, type HtmlFigure } from '../report/html.js';
import { renderFigure } from '../report/render.js';
import { readCheckpoint } from '../train/checkpoint.js';
import { collectRouting } from './collect.js';
import { layerStats, type LayerStats } from './stats.js';
import type { Device } from '../runtime/index.js';

export const EXPERT_REPORT_KIND = 'expert-report';
export const EXPERT_REPORT_VERSION = 1;
export const REPORT_FILES = { stats: 'routing-stats.json', html: 'report.html' } as const;
export const FIGURES = ['heatmap', 'utilisation', 'specialisation'] as const;

export interface InspectOptions {
  checkpoint: string;
  data: string;
  out: string;
  /** Metadata field naming each document's domain (default 'domain'). */
  by?: string;
  which?: 'latest' | 'best';
  batch?: number;
  threads?: number;
  /** Where the forward passes run (default the CPU). */
  device?: Device;
  maxDocumentsPerDomain?: number;
  /** Shuffles for the chance level (default 20). */
  shuffles?: number;
  seed?: number;
  force?: boolean;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
  /** Told when a run's latest checkpoint is damaged and an earlier one is read instead. */
  onWarn?(message: string): void;
}

export interface ExpertReport {
  tool: string;
  checkpoint: { dir: string; step: number };
  model: { layers: number; experts: number; segmentLength: number; contextLength: number };
  data: string;
  by: string | null;
  domains: string[];
  documentsPerDomain: number[];
  documents: number;
  segments: number;
  shuffles: number;
  layers: LayerStats[];
}

export interface InspectResult {
  dir: string;
  report: ExpertReport;
  skipped: boolean;
  files: string[];
}

export async function inspectExperts(o: InspectOptions): Promise<InspectResult> {
  if (o.by === 'none') throw new InputError('inspect-experts compares routing across domains: --by must name the metadata field that labels each document (default domain), not none');
  const ckpt = readCheckpoint(o.checkpoint, { which: o.which ?? 'latest', onWarn: o.onWarn });
  const h = openHeldOut(o.data, o.by ?? 'domain');
  checkTokenizer(h, ckpt);
  const shuffles = o.shuffles ?? 20;
  const result = await runStage<ExpertReport>({
    out: o.out,
    kind: EXPERT_REPORT_KIND,
    formatVersion: EXPERT_REPORT_VERSION,
    inputs: [
      artifactInput('checkpoint', ckpt.dir, ckpt.manifest),
      artifactInput('heldout', h.dir, h.store.manifest),
    ],
    params: { by: h.by, maxDocumentsPerDomain: o.maxDocumentsPerDomain ?? null, shuffles, seed: o.seed ?? 0 },
    force: o.force ?? false,
    build: async (dir) => {
      const records = await collectRouting(ckpt, h, {
        ...(o.batch ? { batch: o.batch } : {}),
        ...(o.threads ? { threads: o.threads } : {}),
        ...(o.device ? { device: o.device } : {}),
        ...(o.maxDocumentsPerDomain !== undefined ? { maxDocumentsPerDomain: o.maxDocumentsPerDomain } : {}),
        ...(o.signal ? { signal: o.signal } : {}),
        ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      });
      const layers = Array.from({ length: records.layers }, (_, l) => layerStats(records, l, { shuffles, seed: o.seed ?? 0 }));
      const docs = new Set(records.document);
      const documentsPerDomain = h.rows.map((_, d) => new Set([...records.document].filter((_, s) => records.domain[s] === d)).size);
      const report: ExpertReport = {
        tool: toolVersion(),
        checkpoint: { dir: ckpt.dir, step: ckpt.step },
        model: { layers: ckpt.model.nLayers, experts: ckpt.model.experts, segmentLength: ckpt.model.segmentLength, contextLength: ckpt.model.contextLength },
        data: h.dir,
        by: h.by,
        domains: h.rows,
        documentsPerDomain,
        documents: docs.size,
        segments: records.domain.length,
        shuffles,
        layers,
      };
      writeFileSync(join(dir, REPORT_FILES.stats), `${JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`);
      const specs = {
        heatmap: { spec: heatmapSpec(layers, h.rows), title: 'Mean routing weight per (layer, domain)', caption: 'Each cell: the mean weight an expert receives over the segments of a domain (rows sum to 1). The paper\'s Figures 6/11.' },
        utilisation: { spec: utilisationSpec(layers), title: 'Expert utilisation', caption: 'Share of segments in which the expert\'s routing weight exceeds 2/E.' },
        specialisation: { spec: specialisationSpec(layers), title: 'Domain specialisation', caption: 'I(domain; expert)/H(domain) per layer, next to the same score with domain labels shuffled across documents (mean and 95th percentile).' },
      };
      const figures: HtmlFigure[] = [];
      for (const name of FIGURES) {
        const f = await renderFigure(specs[name].spec);
        writeFileSync(join(dir, `${name}.svg`), f.svg);
        writeFileSync(join(dir, `${name}.png`), f.png);
        figures.push({ id: name, title: specs[name].title, caption: specs[name].caption, svg: f.svg });
      }
      writeFileSync(join(dir, REPORT_FILES.html), reportHtml(report, figures));
      return report;
    },
  });
  return {
    dir: o.out,
    report: result.manifest.stats,
    skipped: result.skipped,
    files: Object.keys(result.manifest.files).sort(),
  };
}

/** The short text summary the command prints. */
export function inspectSummary(r: ExpertReport, dir: string): string {
  const f = (x: number | null | undefined, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
  const lines = [
    `${r.documents} documents, ${r.segments} segments, ${r.domains.length} domains (${r.domains.join(', ')}); E = ${r.model.experts}, T = ${r.model.segmentLength}`,
    'layer  specialisation  chance(mean/p95)  active/seg  entropy/logE  load balance  max load×E',
    ...r.layers.map(
      (s) =>
        `${String(s.layer).padStart(5)}  ${f(s.specialisation, 4).padStart(14)}  ${`${f(s.chance?.mean, 4)}/${f(s.chance?.p95, 4)}`.padStart(16)}  ${f(s.activePerSegment, 2).padStart(10)}  ${f(s.entropyNormalised).padStart(12)}  ${f(s.loadBalance).padStart(12)}  ${f(s.maxLoadRatio, 2).padStart(10)}`,
    ),
    `report: ${join(dir, REPORT_FILES.html)}`,
  ];
  return `${lines.join('\n')}\n`;
}
