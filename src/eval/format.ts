/** The perplexity report as Markdown (stdout, perplexity.md) and JSON. */
import type { PerplexityReport, PerplexityResult, PerplexityRow } from './perplexity.js';

export const fixed = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : String(x));
export const int = (x: number) => x.toLocaleString('en');
/** A relative change as a signed percentage ("+1.2%", "−0.4%"). */
export const pct = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}%`;

/** A Markdown table. */
export function table(header: string[], rows: string[][], align: Array<'l' | 'r'>): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(align.map((a) => (a === 'r' ? '---:' : ':---'))), ...rows.map(line)].join('\n');
}

export function describeRouting(r: PerplexityResult): string {
  if (r.routing === 'dense') return 'dense (no routing)';
  if (r.routing === 'prompt') return `prompt routing (one decision per layer from the first ${r.promptTokens} tokens of each window, then fixed)`;
  return 'segment routing (causal, as in training)';
}

export const resultLabel = (r: { checkpoint: { path: string; step: number }; routing: string }) => `${r.checkpoint.path} @ step ${r.checkpoint.step}${r.routing === 'dense' ? '' : ` [${r.routing}]`}`;

function detail(r: PerplexityResult): string {
  const row = (x: PerplexityRow, name = x.name) => [name, int(x.documents), int(x.tokens), fixed(x.meanNll, 4), fixed(x.perplexity, 2), fixed(x.bitsPerByte, 4)];
  const rows = [
    ...r.rows.map((x) => row(x)),
    row(r.total, '**total**'),
    ['*macro average*', '', '', fixed(r.macro.meanNll, 4), fixed(r.macro.perplexity, 2), fixed(r.macro.bitsPerByte, 4)],
  ];
  const model = r.checkpoint.experts > 1 ? `${r.checkpoint.experts} experts, ${describeRouting(r)}` : 'dense';
  const self = r.total.selfRoutedTokens;
  return [
    `### ${r.checkpoint.path} — step ${r.checkpoint.step}, ${model}`,
    '',
    table(['row', 'documents', 'tokens', 'mean NLL', 'perplexity', 'bits/byte'], rows, ['l', 'r', 'r', 'r', 'r', 'r']),
    '',
    (r.stride === r.window
      ? `Windows of ${r.window} tokens without overlap (stride = window): every token scored once, with the tokens before it in its window as context (a smaller --stride gives each at least window − stride).`
      : `Windows of ${r.window} tokens, stride ${r.stride}: every token scored once; a token at document position i sees at least min(i, ${r.window - r.stride}) earlier tokens.`) +
      (self > 0 ? ` ${int(self)} scored tokens (${fixed((100 * self) / r.total.tokens, 1)}%) sit in a window's ${r.routing === 'prompt' ? 'routing prompt' : 'first segment'}, whose routing weights also saw the tokens after them (the paper's segment-1 exception).` : ''),
  ].join('\n');
}

/** The paper's Table 1 form: one line per checkpoint/routing, perplexity per row, change against the first. */
function comparison(results: PerplexityResult[]): string {
  const base = results[0]!;
  const names = base.rows.map((r) => r.name);
  const cell = (r: PerplexityResult, x: number, b: number) => (r === base ? fixed(x, 2) : `${fixed(x, 2)} (${pct(x / b - 1)})`);
  const rows = results.map((r) => [
    resultLabel(r),
    ...names.map((n) => {
      const x = r.rows.find((y) => y.name === n);
      const b = base.rows.find((y) => y.name === n)!;
      return x ? cell(r, x.perplexity, b.perplexity) : '—';
    }),
    cell(r, r.total.perplexity, base.total.perplexity),
    cell(r, r.macro.perplexity, base.macro.perplexity),
  ]);
  return [
    '### Perplexity side by side (relative change against the first line)',
    '',
    table(['checkpoint', ...names, 'total', 'macro'], rows, ['l', ...names.map(() => 'r' as const), 'r', 'r']),
  ].join('\n');
}

export function perplexityMarkdown(report: PerplexityReport): string {
  const parts = [
    `## Perplexity on ${report.data}${report.by ? ` by ${report.by}` : ''}`,
    '',
    'mean NLL in nats per token (each document\'s EOS included); perplexity = exp(mean NLL); bits/byte = Σ NLL / ln 2 / UTF-8 bytes of the text. total: all tokens pooled; macro: unweighted mean over rows.',
  ];
  if (report.results.length > 1) parts.push('', comparison(report.results));
  for (const r of report.results) parts.push('', detail(r));
  return `${parts.join('\n')}\n`;
}

/** The short form `lory run` ends with: the side-by-side table (or the one result's rows). */
export function perplexitySummary(report: PerplexityReport): string {
  const body = report.results.length > 1 ? comparison(report.results) : detail(report.results[0]!);
  return `## Perplexity on ${report.data}${report.by ? ` by ${report.by}` : ''}\n\n${body}\n\n`;
}

/** A report as JSON; NaN and ±Infinity (undefined values) become null. */
export function reportJson(report: unknown): string {
  return `${JSON.stringify(report, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2)}\n`;
}

export const perplexityJson = (report: PerplexityReport): string => reportJson(report);
