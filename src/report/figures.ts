/** The Vega-Lite specs of the expert report's figures (data from inspect's layer statistics). */
import type { TopLevelSpec } from 'vega-lite';
import type { LayerStats } from '../inspect/stats.js';

const expertName = (i: number) => `E${i}`;
const layerName = (l: number) => `layer ${l}`;

/** Mean routing weight of each expert per (layer, domain): the paper's Figures 6/11, one panel a layer. */
export function heatmapSpec(layers: LayerStats[], domains: string[]): TopLevelSpec {
  const values = layers.flatMap((s) => s.meanWeight.flatMap((row, d) => row.map((w, i) => ({ layer: layerName(s.layer), domain: domains[d], expert: expertName(i), weight: Number.isFinite(w) ? w : null }))));
  const E = layers[0]?.meanWeight[0]?.length ?? 1;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Mean routing weight per expert, by domain and layer',
    data: { values },
    facet: { field: 'layer', type: 'ordinal', title: null, sort: layers.map((s) => layerName(s.layer)) },
    columns: Math.min(4, layers.length),
    spec: {
      width: Math.max(140, 34 * E),
      height: Math.max(60, 22 * domains.length),
      layer: [
        {
          mark: 'rect',
          encoding: {
            x: { field: 'expert', type: 'ordinal', title: 'expert', sort: Array.from({ length: E }, (_, i) => expertName(i)), axis: { labelAngle: 0 } },
            y: { field: 'domain', type: 'nominal', title: null, sort: domains },
            color: { field: 'weight', type: 'quantitative', title: 'mean weight', scale: { scheme: 'blues', domain: [0, Math.max(2 / E, ...values.map((v) => v.weight ?? 0))] } },
            tooltip: [{ field: 'domain' }, { field: 'expert' }, { field: 'weight', format: '.3f' }],
          },
        },
        ...(E <= 16
          ? [
              {
                mark: { type: 'text' as const, fontSize: 8 },
                encoding: {
                  x: { field: 'expert', type: 'ordinal' as const, sort: Array.from({ length: E }, (_, i) => expertName(i)) },
                  y: { field: 'domain', type: 'nominal' as const, sort: domains },
                  text: { field: 'weight', type: 'quantitative' as const, format: '.2f' },
                  color: { condition: { test: `datum.weight > ${1.5 / E}`, value: 'white' }, value: 'black' },
                },
              },
            ]
          : []),
      ],
    },
  } as TopLevelSpec;
}

/** Share of segments in which each expert's weight exceeds 2/E, per layer. */
export function utilisationSpec(layers: LayerStats[]): TopLevelSpec {
  const values = layers.flatMap((s) => s.utilisation.map((u, i) => ({ layer: layerName(s.layer), expert: expertName(i), share: u })));
  const E = layers[0]?.utilisation.length ?? 1;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Expert utilisation: share of segments with weight > 2/E (E = ${E})`,
    data: { values },
    facet: { field: 'layer', type: 'ordinal', title: null, sort: layers.map((s) => layerName(s.layer)) },
    columns: Math.min(4, layers.length),
    spec: {
      width: Math.max(120, 22 * E),
      height: 100,
      mark: 'bar',
      encoding: {
        x: { field: 'expert', type: 'ordinal', sort: Array.from({ length: E }, (_, i) => expertName(i)), axis: { labelAngle: 0 } },
        y: { field: 'share', type: 'quantitative', scale: { domain: [0, 1] }, axis: { format: '%' }, title: 'segments' },
        tooltip: [{ field: 'expert' }, { field: 'share', format: '.1%' }],
      },
    },
  } as TopLevelSpec;
}

const SERIES = ['observed', 'shuffled labels: mean', 'shuffled labels: 95th percentile'] as const;

/** Specialisation I(D;X)/H(D) per layer next to the shuffled-label chance level. */
export function specialisationSpec(layers: LayerStats[]): TopLevelSpec {
  const values = layers.flatMap((s) => [
    { layer: layerName(s.layer), series: SERIES[0], score: s.specialisation },
    ...(s.chance ? [{ layer: layerName(s.layer), series: SERIES[1], score: s.chance.mean }, { layer: layerName(s.layer), series: SERIES[2], score: s.chance.p95 }] : []),
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Domain specialisation per layer: I(domain; expert) / H(domain)',
    data: { values },
    width: Math.max(200, 70 * layers.length),
    height: 160,
    mark: 'bar',
    encoding: {
      x: { field: 'layer', type: 'ordinal', sort: layers.map((s) => layerName(s.layer)), axis: { labelAngle: 0 }, title: null },
      xOffset: { field: 'series', type: 'nominal', sort: [...SERIES] },
      y: { field: 'score', type: 'quantitative', title: 'specialisation (0 … 1)' },
      color: { field: 'series', type: 'nominal', title: null, scale: { domain: [...SERIES], range: ['#1f5fa8', '#bbbbbb', '#888888'] }, legend: { orient: 'bottom', direction: 'vertical', labelLimit: 400 } },
      tooltip: [{ field: 'layer' }, { field: 'series' }, { field: 'score', format: '.4f' }],
    },
  } as TopLevelSpec;
}
