/**
 * Figures: Vega-Lite specs compiled to Vega and rendered server-side to SVG (Vega's headless view,
 * renderer 'none' → toSVG), and the SVG rasterised to PNG with resvg. No browser, no network.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Fonts every figure asks for, first available wins (DejaVu ships with Debian's fontconfig). */
export const FIGURE_FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

export interface RenderedFigure {
  svg: string;
  png: Buffer;
  width: number;
  height: number;
}

export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile({ ...spec, config: { font: FIGURE_FONT, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function svgToPng(svg: string, scale = 2): { png: Buffer; width: number; height: number } {
  const image = new Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render();
  return { png: image.asPng(), width: image.width, height: image.height };
}

export async function renderFigure(spec: TopLevelSpec): Promise<RenderedFigure> {
  const svg = await renderSvg(spec);
  return { svg, ...svgToPng(svg) };
}
