/** The page of `lory report`: runs side by side — a summary table, what differs in their configs, the figures. */
import { esc, figureHtml, htmlPage, num, type HtmlFigure } from './html.js';
import { configDifferences, flattenConfig, type RunSummary } from './run-summary.js';
import { DEFAULT_BUCKETS } from './series.js';
import type { XAxis } from './training-figures.js';

export interface TrainingReport {
  tool: string;
  x: XAxis;
  runs: RunSummary[];
}

/** A run's state in words, for the table, the legend and the command's output. */
export function stateText(s: RunSummary): string {
  switch (s.state) {
    case 'finished':
      return 'finished';
    case 'training':
      return `training (pid ${s.pid})`;
    case 'diverged':
      return `diverged at step ${s.steps}`;
    case 'stopped':
      return `stopped at step ${s.steps}${s.plannedSteps !== null ? ` of ${s.plannedSteps}` : ''}`;
  }
}

/** The run's name as the figures' legends show it: an unfinished run says so. */
export const legendLabel = (s: Pick<RunSummary, 'run' | 'state'>) => (s.state === 'finished' ? s.run : `${s.run} (${s.state})`);

const int = (x: number | null) => (x === null ? '—' : x.toLocaleString('en-US'));
const withStep = (x: number | null, step: number | null) => (x === null ? '—' : `${num(x, 4)} <small>(step ${step})</small>`);
const duration = (s: number) => (s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`);

function summaryTable(runs: RunSummary[]): string {
  const head = ['run', 'status', 'model', 'steps', 'tokens', 'final train loss', 'valid loss', 'lowest valid loss', 'dense → MoE after step', 'median tokens/s', 'median MFU', 'clipped steps', 'bad steps', 'time in steps'];
  const rows = runs.map((s) => {
    const cells: Array<[string, string]> = [
      ['run', esc(s.run)],
      ['state', esc(stateText(s))],
      ['model', esc(s.model ?? '—')],
      ['steps', `${int(s.steps)}${s.plannedSteps !== null && s.plannedSteps !== s.steps ? ` / ${int(s.plannedSteps)}` : ''}`],
      ['tokens', int(s.tokens)],
      ['finalLoss', s.finalLoss === null && s.steps > 0 ? 'not finite' : num(s.finalLoss, 4)],
      ['validLoss', withStep(s.validLoss, s.validStep)],
      ['lowestValidLoss', withStep(s.lowestValidLoss, s.lowestValidStep)],
      ['convertedAt', s.convertedAt === null ? '—' : String(s.convertedAt)],
      ['medianTokensPerSecond', s.medianTokensPerSecond === null ? '—' : Math.round(s.medianTokensPerSecond).toLocaleString('en-US')],
      ['medianMfu', s.medianMfu === null ? '—' : `${(100 * s.medianMfu).toFixed(1)}%`],
      ['clippedSteps', s.clipNorm === null ? 'no clipping' : `${s.clippedSteps} <small>(&gt; ${s.clipNorm})</small>`],
      ['badSteps', String(s.badSteps)],
      ['stepSeconds', duration(s.stepSeconds)],
    ];
    return `<tr>${cells.map(([k, v]) => `<td data-key="${k}">${v}</td>`).join('')}</tr>`;
  });
  return `<table id="summary-table"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>\n${rows.join('\n')}\n</tbody></table>`;
}

function configSection(runs: RunSummary[], configs: Array<Record<string, unknown> | null>): string {
  const parts: string[] = [];
  if (runs.length > 1) {
    const diff = configDifferences(configs);
    parts.push(
      diff.length
        ? `<p>The settings that differ between the runs (the rest are the same):</p>\n<table id="config-diff"><thead><tr><th>setting</th>${runs.map((r) => `<th>${esc(r.run)}</th>`).join('')}</tr></thead><tbody>\n${diff.map((d) => `<tr><td><code>${esc(d.key)}</code></td>${d.values.map((v) => `<td>${v === null ? '<em>unset</em>' : esc(v)}</td>`).join('')}</tr>`).join('\n')}\n</tbody></table>`
        : '<p>All runs have the same resolved config.</p>',
    );
  }
  runs.forEach((r, i) => {
    const flat = flattenConfig(configs[i] ?? {});
    parts.push(
      flat.length
        ? `<details><summary>${esc(r.run)}: resolved config (${flat.length} settings)</summary>\n<table class="config"><tbody>\n${flat.map(([k, v]) => `<tr><td><code>${esc(k)}</code></td><td>${esc(v)}</td></tr>`).join('\n')}\n</tbody></table></details>`
        : `<p>${esc(r.run)}: no readable config.json.</p>`,
    );
  });
  return parts.join('\n');
}

function notes(runs: RunSummary[], refreshSeconds: number | undefined): string {
  const out: string[] = [];
  const live = runs.filter((r) => r.state === 'training');
  if (live.length) {
    const which = live.map((r) => `${esc(r.run)} (pid ${r.pid}, step ${int(r.steps)}${r.plannedSteps !== null ? ` of ${int(r.plannedSteps)}` : ''})`).join(', ');
    out.push(`<p class="note" id="live">Still training: ${which}. ${refreshSeconds ? `This page is regenerated while it trains and reloads itself every ${refreshSeconds} s.` : 'This page shows the steps logged so far (<code>lory report --watch</code> keeps it current).'}</p>`);
  }
  for (const r of runs) {
    if (r.steps === 0) out.push(`<p class="warn">${esc(r.run)}: no training step logged yet.</p>`);
    for (const p of r.problems) out.push(`<p class="warn">${esc(r.run)}: metrics.jsonl: ${esc(p)}.</p>`);
    if (r.badSteps > 0) out.push(`<p class="warn">${esc(r.run)}: ${r.badSteps} bad step${r.badSteps > 1 ? 's' : ''} (non-finite loss or unreadable lines), marked red in the figures.</p>`);
  }
  return out.join('\n');
}

export function trainingReportHtml(r: TrainingReport, configs: Array<Record<string, unknown> | null>, figures: HtmlFigure[], refreshSeconds?: number): string {
  const names = r.runs.map((s) => esc(s.run)).join(', ');
  return htmlPage({
    title: `lory report — ${r.runs.map((s) => s.run).join(', ')}`,
    ...(refreshSeconds ? { refreshSeconds } : {}),
    body: `<h1>Training report: ${names}</h1>
<p>${r.runs.length} run${r.runs.length > 1 ? 's' : ''}: ${r.runs.map((s) => `<code>${esc(s.dir)}</code>`).join(', ')}. The figures' x axis: ${r.x === 'steps' ? 'training steps' : 'tokens seen (runs aligned on the tokens they trained on)'}.</p>
${notes(r.runs, refreshSeconds)}
<h2>Summary</h2>
${summaryTable(r.runs)}
<h2>Config</h2>
${configSection(r.runs, configs)}
<h2>Figures</h2>
${figures.map(figureHtml).join('\n')}
<h2>How the figures are drawn</h2>
<dl>
<dt>Smoothing</dt><dd>The thick training-loss line is an exponential moving average, debiased as TensorBoard's, over about 4% of the run's steps (at most 500); the faint line is every step's loss.</dd>
<dt>Downsampling</dt><dd>A line of more than ${(4 * DEFAULT_BUCKETS).toLocaleString('en-US')} points is cut into ${DEFAULT_BUCKETS} equal stretches of x; each keeps its first, last, lowest and highest point (and a break where it has bad steps), so spikes and the extremes stay exactly where they were and the drawn line looks as with every point. The table's numbers use every line of metrics.jsonl.</dd>
<dt>Bad steps</dt><dd>A step whose loss was not finite (metrics.jsonl holds null) or whose line could not be read breaks the lines there, and a red band covers it.</dd>
<dt>Conversion</dt><dd>A Lory run trains a dense model first; the dashed rule in its colour is the last dense step, after which it trains as experts (routing figures start there).</dd>
<dt>Final, valid and lowest loss</dt><dd>The last step's training loss, the last validation's loss and the lowest validation loss logged; for a finished run the first two equal its manifest's <code>finalLoss</code> and <code>validLoss</code>.</dd>
</dl>
<p>Made by lory ${esc(r.tool)}.</p>`,
  });
}
