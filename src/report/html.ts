/**
 * Self-contained HTML reports (inspect-experts' report.html, and the page shell and figures that
 * lory report's training page shares): tables and inline SVG figures, no scripts, no network
 * resources (a Content-Security-Policy forbids any fetch), readable offline and in CI.
 */
import type { ExpertReport } from '../inspect/inspect.js';

export const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
export const num = (x: number | null | undefined, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(d));
export const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export interface HtmlFigure {
  id: string;
  title: string;
  caption: string;
  svg: string;
}

/** One figure: its inline SVG under a heading, with a caption. */
export function figureHtml(f: HtmlFigure): string {
  return `<figure class="figure" id="${esc(f.id)}">\n<h3>${esc(f.title)}</h3>\n${f.svg}\n<figcaption>${esc(f.caption)}</figcaption>\n</figure>`;
}

/**
 * A whole page around `body` (already HTML): the shared style and the Content-Security-Policy that
 * allows no fetch and no script. `refreshSeconds` makes the browser reload it (lory report --watch);
 * a meta refresh needs no script.
 */
export function htmlPage(o: { title: string; body: string; refreshSeconds?: number }): string {
  const refresh = o.refreshSeconds ? `\n<meta http-equiv="refresh" content="${o.refreshSeconds}">` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">${refresh}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(o.title)}</title>
<style>
body { font-family: 'DejaVu Sans', 'Liberation Sans', Arial, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
figure { margin: 1.5em 0; } figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; max-width: 60em; }
code { background: #f5f5f5; padding: 0 0.2em; } dt { font-weight: bold; margin-top: 0.5em; }
.note { background: #fff8e0; border-left: 4px solid #e0b000; padding: 0.4em 0.8em; }
.warn { background: #fdecea; border-left: 4px solid #d62728; padding: 0.4em 0.8em; }
</style>
</head>
<body>
${o.body}
</body>
</html>
`;
}

export function reportHtml(r: ExpertReport, figures: HtmlFigure[]): string {
  const rows = r.layers
    .map(
      (s) => `<tr><td>${s.layer}</td><td>${num(s.specialisation, 4)}</td><td>${num(s.chance?.mean, 4)}</td><td>${num(s.chance?.p95, 4)}</td>` +
        `<td>${num(s.activePerSegment, 2)}</td><td>${s.utilisation.map(pct).join(' ')}</td><td>${num(s.entropy, 3)} (${num(s.entropyNormalised, 3)})</td>` +
        `<td>${num(s.loadBalance, 3)}</td><td>${num(s.maxLoadRatio, 2)}</td></tr>`,
    )
    .join('\n');
  const domains = r.domains.map((d, i) => `<tr><td>${esc(d)}</td><td>${r.documentsPerDomain[i]}</td><td>${r.layers[0]?.segmentsPerDomain[i] ?? 0}</td></tr>`).join('\n');
  const figs = figures.map(figureHtml).join('\n');
  return htmlPage({
    title: `lory inspect-experts — ${r.checkpoint.dir}`,
    body: `<h1>Expert routing of a Lory checkpoint</h1>
<p>Checkpoint <code>${esc(r.checkpoint.dir)}</code> (step ${r.checkpoint.step}): ${r.model.layers} layers, ${r.model.experts} experts, segments of ${r.model.segmentLength} tokens, windows of ${r.model.contextLength}.
Held-out data <code>${esc(r.data)}</code>, split by <code>${esc(r.by ?? 'none')}</code>: ${r.documents} documents, ${r.segments} segments, causal segment routing as in training.</p>
<table><thead><tr><th>domain</th><th>documents</th><th>segments</th></tr></thead><tbody>
${domains}
</tbody></table>
<h2>Per layer</h2>
<table id="layer-table"><thead><tr><th>layer</th><th>specialisation</th><th>chance (mean)</th><th>chance (95th pct)</th><th>active experts / segment</th><th>utilisation per expert (weight &gt; 2/E)</th><th>routing entropy, nats (÷ log E)</th><th>load balance</th><th>max load × E</th></tr></thead><tbody>
${rows}
</tbody></table>
<h2>Figures</h2>
${figs}
<h2>Definitions</h2>
<dl>
<dt>Mean routing weight</dt><dd>For each (layer, domain, expert): the expert's routing weight averaged over the domain's segments (the weights each segment was served with; the paper's Figures 6 and 11).</dd>
<dt>Utilisation</dt><dd>Share of segments in which an expert's weight exceeds 2/E = ${num(2 / r.model.experts, 3)} (the paper's threshold for an activated expert); active experts per segment is the mean count of such experts.</dd>
<dt>Specialisation</dt><dd>I(D; X) / H(D): D is a segment's domain, X an expert drawn from the segment's routing weights, so p(d, i) = (1/S) Σ<sub>s ∈ d</sub> e<sub>s,i</sub>. I(D; X) is the p(d)-weighted Jensen–Shannon divergence between the domains' mean routing distributions: 0 when all domains route alike, 1 when domains use disjoint experts.</dd>
<dt>Chance level</dt><dd>The same score after shuffling domain labels across documents (${r.shuffles} shuffles, label counts kept, a document's segments kept together). A finite sample gives a positive score even without specialisation; the observed score means something only well above this.</dd>
<dt>Routing entropy</dt><dd>Mean over segments of the entropy of the routing weights, in nats; divided by log E it is 1 for uniform weights and 0 for one expert.</dd>
<dt>Load balance</dt><dd>Entropy of the experts' mean weight over all segments divided by log E (1: every expert carries the same load); max load × E is 1 for a perfectly even load.</dd>
</dl>
<p>Made by lory ${esc(r.tool)}.</p>`,
  });
}
