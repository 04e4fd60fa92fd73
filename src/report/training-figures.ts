/**
 * The Vega-Lite specs of `lory report`'s figures, from the runs' metrics: training loss (raw and
 * smoothed), validation loss, learning rate, gradient norm with the clipping threshold, tokens/s,
 * MFU, and for MoE runs per-layer routing entropy, active experts and load balance. One colour per
 * run (the same in every figure), x in steps or tokens seen, the dense → MoE conversion a dashed rule
 * in the run's colour, bad steps a red band. Every line is downsampled (series.ts) before it is drawn.
 *
 * Each line mark carries its series name as its SVG aria-label ("<figure>: <series>: <run>"), so a
 * test can find a run's line and count its points.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { RunData, StepRow } from './run-data.js';
import { conversionStep } from './run-summary.js';
import { DEFAULT_BUCKETS, downsample, findGaps, smooth, smoothingWindow, type Point } from './series.js';

export type XAxis = 'steps' | 'tokens';

export interface FigureRun {
  /** The run's name in the legend (with "(training)" and such). */
  label: string;
  data: RunData;
}

export interface FigureSpec {
  id: string;
  title: string;
  caption: string;
  spec: TopLevelSpec;
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const WIDTH = 720;
const HEIGHT = 220;

interface Context {
  runs: FigureRun[];
  x: XAxis;
  buckets: number;
  /** The end of every figure's x axis (they all start at 0), so the figures line up. */
  xMax: number;
  /** Each run's MoE layers. */
  layers: Map<FigureRun, number[]>;
}

type Row = Record<string, string | number | null>;

const xOf = (c: Context, s: { step: number; tokens: number }) => (c.x === 'steps' ? s.step : s.tokens);

/**
 * One value per step as a line: undefined leaves the step out, null breaks the line (a bad step); a
 * jump in the step numbers (lines that could not be read) breaks it too.
 */
function curve(c: Context, steps: StepRow[], value: (s: StepRow) => number | null | undefined): Point[] {
  const points: Point[] = [];
  let prev: StepRow | undefined;
  for (const s of steps) {
    const y = value(s);
    if (y === undefined) continue;
    if (prev && s.step > prev.step + 1) points.push({ x: (xOf(c, prev) + xOf(c, s)) / 2, y: null });
    points.push({ x: xOf(c, s), y });
    prev = s;
  }
  return points;
}

/** Rows of one drawn line: downsampled points tagged with the run and the series. */
function lineRows(c: Context, run: string, series: string, points: Point[], extra: Row = {}): Row[] {
  return downsample(points, c.buckets).map((p) => ({ run, series, x: p.x, y: p.y, ...extra }));
}

function xEncoding(c: Context) {
  return { field: 'x', type: 'quantitative' as const, title: c.x === 'steps' ? 'step' : 'tokens seen', axis: { format: '~s' }, scale: { domain: [0, c.xMax] } };
}

/** Colour by run: every run keeps its colour in every figure; the legend lists the runs drawn (`shown`). */
function colour(c: Context, shown?: string[]) {
  return {
    field: 'run',
    type: 'nominal' as const,
    title: null,
    scale: { domain: c.runs.map((r) => r.label), scheme: c.runs.length > 10 ? 'category20' : 'tableau10' },
    legend: { orient: 'bottom' as const, direction: 'horizontal' as const, labelLimit: 400, symbolOpacity: 1, symbolStrokeWidth: 2.5, ...(shown ? { values: shown } : {}) },
  };
}

/** A line per (run, series); its aria-label names the figure, the series and the run. */
function line(c: Context, figure: string, rows: Row[], y: object, mark: object = {}) {
  return {
    data: { values: rows.map((r) => ({ ...r, aria: `${figure}: ${String(r.series)}: ${String(r.run)}` })) },
    mark: { type: 'line' as const, strokeWidth: 1.5, ...mark },
    encoding: { x: xEncoding(c), y, color: colour(c, [...new Set(rows.map((r) => String(r.run)))]), detail: { field: 'series', type: 'nominal' as const }, description: { field: 'aria', type: 'nominal' as const } },
  };
}

/** Dashed rules at each MoE run's conversion step, in its colour. */
function conversionLayer(c: Context) {
  const values = c.runs.flatMap((r) => {
    const at = conversionStep(r.data);
    const row = at === null ? undefined : r.data.steps.find((s) => s.step === at);
    return row ? [{ run: r.label, x: xOf(c, row), what: `${r.label}: dense → experts after step ${at}` }] : [];
  });
  return values.length
    ? [{ data: { values }, mark: { type: 'rule' as const, strokeDash: [5, 3], strokeWidth: 1.5 }, encoding: { x: xEncoding(c), color: colour(c), tooltip: [{ field: 'what', type: 'nominal' as const, title: 'conversion' }] } }]
    : [];
}

/** The index of the first step numbered `step` or later (steps are in order). */
function lowerBound(steps: StepRow[], step: number): number {
  let lo = 0;
  let hi = steps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid]!.step < step) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

interface Band {
  run: string;
  x0: number;
  x1: number;
  what: string;
}

/**
 * A run's bad stretches as x ranges: from the last good step before to the first good one after (or
 * the last bad step, at the end). Bands closer than a pixel are merged, so a run with thousands of
 * bad steps draws a few bands, not thousands.
 */
function runBands(c: Context, r: FigureRun): Band[] {
  const steps = r.data.steps;
  const bands: Band[] = [];
  for (const g of findGaps(steps)) {
    let b = lowerBound(steps, g.from) - 1;
    while (b >= 0 && steps[b]!.loss === null) b--;
    const end = lowerBound(steps, g.to + 1);
    let a = end;
    while (a < steps.length && steps[a]!.loss === null) a++;
    const from = steps[Math.max(b, 0)]!;
    const to = steps[a] ?? steps[end - 1] ?? from;
    const what = `${g.why} at step${g.from === g.to ? ` ${g.from}` : `s ${g.from}–${g.to}`}`;
    const prev = bands.at(-1);
    if (prev && xOf(c, from) - prev.x1 <= c.xMax / WIDTH) {
      prev.x1 = Math.max(prev.x1, xOf(c, to));
      prev.what = `${prev.what.replace(/ \(and more.*$/, '')} (and more, to step ${g.to})`;
    } else bands.push({ run: r.label, x0: xOf(c, from), x1: xOf(c, to), what });
  }
  return bands.map((band) => ({ ...band, what: `${r.label}: ${band.what}` }));
}

/** Red bands over each run's bad steps. */
function gapLayer(c: Context) {
  const values = c.runs.flatMap((r) => runBands(c, r));
  return values.length
    ? [{ data: { values }, mark: { type: 'rect' as const, color: '#d62728', opacity: 0.15 }, encoding: { x: { ...xEncoding(c), field: 'x0' }, x2: { field: 'x1' }, tooltip: [{ field: 'what', type: 'nominal' as const, title: 'bad steps' }] } }]
    : [];
}

function layered(c: Context, title: string, layers: object[]): TopLevelSpec {
  return { $schema: SCHEMA, title, width: WIDTH, height: HEIGHT, layer: layers } as TopLevelSpec;
}

const yq = (title: string, extra: object = {}) => ({ field: 'y', type: 'quantitative' as const, title, scale: { zero: false }, ...extra });

function lossFigure(c: Context): FigureSpec {
  const raw: Row[] = [];
  const smoothed: Row[] = [];
  for (const r of c.runs) {
    const points = curve(c, r.data.steps, (s) => s.loss);
    raw.push(...lineRows(c, r.label, 'raw', points));
    const ys = smooth(points.map((p) => p.y), smoothingWindow(r.data.steps.length));
    smoothed.push(...lineRows(c, r.label, 'smoothed', points.map((p, i) => ({ x: p.x, y: ys[i]! }))));
  }
  return {
    id: 'loss',
    title: 'Training loss',
    caption: 'Loss of each step\'s batch (thin, faint) and its exponential moving average over about 4% of the run\'s steps (thick). Dashed: the switch from the dense warm-up to experts; red: steps with a non-finite loss or unreadable lines.',
    spec: layered(c, 'Training loss (nats/token)', [...gapLayer(c), line(c, 'loss', raw, yq('loss'), { opacity: 0.3, strokeWidth: 1 }), line(c, 'loss', smoothed, yq('loss'), { strokeWidth: 2 }), ...conversionLayer(c)]),
  };
}

function validFigure(c: Context): FigureSpec | undefined {
  const rows = c.runs.flatMap((r) => r.data.valid.map((v) => ({ run: r.label, series: 'valid', x: xOf(c, v), y: v.loss, step: v.step })));
  if (!rows.length) return undefined;
  const base = line(c, 'valid-loss', rows, yq('validation loss'), { point: true, strokeWidth: 2 });
  return {
    id: 'valid-loss',
    title: 'Validation loss',
    caption: 'Loss on the run\'s validation sequences at each validation step.',
    spec: layered(c, 'Validation loss (nats/token)', [{ ...base, encoding: { ...base.encoding, tooltip: [{ field: 'run' }, { field: 'step' }, { field: 'y', title: 'loss', format: '.4f' }] } }, ...conversionLayer(c)]),
  };
}

/** A figure of one per-step value, a line per run. */
function stepFigure(c: Context, id: string, title: string, caption: string, value: (s: StepRow) => number | null, y: object, extra: object[] = []): FigureSpec | undefined {
  const rows = c.runs.flatMap((r) => lineRows(c, r.label, id, curve(c, r.data.steps, value)));
  if (!rows.some((r) => r.y !== null)) return undefined;
  return { id, title, caption, spec: layered(c, title, [...gapLayer(c), line(c, id, rows, y), ...extra, ...conversionLayer(c)]) };
}

function clipLayer(c: Context) {
  const clips = [...new Set(c.runs.map((r) => (r.data.config as { train?: { clip_norm?: unknown } } | null)?.train?.clip_norm).filter((v): v is number => typeof v === 'number' && v > 0))];
  return clips.length
    ? [
        { data: { values: clips.map((v) => ({ clip: v, text: `clip_norm ${v}: above, the update is scaled down` })) }, mark: { type: 'rule' as const, color: '#888', strokeDash: [2, 2] }, encoding: { y: { field: 'clip', type: 'quantitative' as const } } },
        { data: { values: clips.map((v) => ({ clip: v, text: `clipped above ${v}` })) }, mark: { type: 'text' as const, align: 'left' as const, baseline: 'bottom' as const, dx: 4, dy: -2, color: '#666', fontSize: 10 }, encoding: { y: { field: 'clip', type: 'quantitative' as const }, x: { value: 0 }, text: { field: 'text' } } },
      ]
    : [];
}

/** The width of a routing panel: several a row. */
const panelWidth = (layers: number) => (layers > 2 ? 240 : 340);

/** The MoE layers a run logged routing for (none for a dense run). */
function routedLayers(r: RunData): number[] {
  const layers = new Set<number>();
  for (const s of r.steps) for (const l of s.routing ?? []) layers.add(l.layer);
  return [...layers].sort((a, b) => a - b);
}

/** Rows of a per-layer routing value, one line per (run, layer), downsampled to the panel's width. */
function routingRows(context: Context, value: (layer: NonNullable<StepRow['routing']>[number], experts: number) => number | null): Row[] {
  const most = Math.max(0, ...context.runs.map((r) => context.layers.get(r)!.length));
  const c = { ...context, buckets: Math.max(1, Math.round((context.buckets * panelWidth(most)) / WIDTH)) };
  return c.runs.flatMap((r) =>
    c.layers.get(r)!.flatMap((layer) =>
      lineRows(
        c,
        r.label,
        `layer ${layer}`,
        curve(c, r.data.steps, (s) => {
          const l = s.routing?.find((x) => x.layer === layer);
          return l ? value(l, l.utilisation.length) : undefined;
        }),
        { layer: `layer ${layer}` },
      ),
    ),
  );
}

function routingFigure(c: Context, id: string, title: string, caption: string, rows: Row[], y: object): FigureSpec | undefined {
  if (!rows.length) return undefined;
  const layers = [...new Set(rows.map((r) => String(r.layer)))].sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)));
  const base = line(c, id, rows, y);
  return {
    id,
    title,
    caption,
    spec: {
      $schema: SCHEMA,
      title,
      data: base.data,
      facet: { field: 'layer', type: 'ordinal', title: null, sort: layers },
      columns: Math.min(4, layers.length),
      spec: { width: panelWidth(layers.length), height: 150, mark: base.mark, encoding: base.encoding },
    } as TopLevelSpec,
  };
}

/** Every figure the runs have data for, in page order. */
export function trainingFigures(runs: FigureRun[], x: XAxis, buckets?: number): FigureSpec[] {
  const xMax = Math.max(1, ...runs.flatMap((r) => [...r.data.steps.slice(-1), ...r.data.valid.slice(-1)].map((s) => (x === 'steps' ? s.step : s.tokens))));
  const c: Context = { runs, x, buckets: buckets ?? DEFAULT_BUCKETS, xMax, layers: new Map(runs.map((r) => [r, routedLayers(r.data)])) };
  const active = routingRows(c, (l) => l.utilisation.reduce((a, b) => a + b, 0));
  const figures = [
    lossFigure(c),
    validFigure(c),
    stepFigure(c, 'lr', 'Learning rate', 'The learning rate of each update: linear warm-up, then cosine decay.', (s) => s.lr, yq('learning rate', { axis: { format: '.1e' } })),
    stepFigure(c, 'grad-norm', 'Gradient norm', 'Global L2 norm of the gradient before clipping; above the dotted line (train.clip_norm) the update was scaled down to that norm.', (s) => s.gradNorm, yq('gradient norm'), clipLayer(c)),
    stepFigure(c, 'throughput', 'Throughput (tokens/s)', 'Training tokens per second of each step (wall time of the step).', (s) => s.tokensPerSecond, yq('tokens/s', { axis: { format: '~s' } })),
    stepFigure(c, 'mfu', 'Model FLOPs utilisation', 'Model FLOPs of the step ÷ step time ÷ the peak of a float32 GEMM measured at the start of the run.', (s) => s.mfu, yq('MFU', { axis: { format: '.1%' } })),
    routingFigure(c, 'routing-entropy', 'Routing entropy ÷ ln E, per layer', 'Mean over segments of the entropy of the routing weights, divided by ln E: 1 is uniform routing, 0 one expert per segment.', routingRows(c, (l, e) => (l.entropy === null || e < 2 ? null : l.entropy / Math.log(e))), yq('entropy ÷ ln E')),
    routingFigure(c, 'routing-utilisation', 'Active experts per segment, per layer', 'Mean number of experts whose routing weight exceeds 2/E in a segment (the paper\'s count of activated experts).', active, yq('active experts', { scale: { domain: [0, Math.max(1, ...active.map((r) => Number(r.y)))] } })),
    routingFigure(c, 'routing-balance', 'Load imbalance, per layer', 'Coefficient of variation across experts of the mean routing weight: 0 is a perfectly even load.', routingRows(c, (l) => l.cv), yq('CV of expert load')),
  ];
  return figures.filter((f): f is FigureSpec => f !== undefined);
}
