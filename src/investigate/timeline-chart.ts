import type { TimelineBins } from './timeline-bins';

/**
 * Draws a timeline (timeline-bins.ts) with vega-lite compiled to vega and rendered to SVG on the
 * server (no browser, no hand-written SVG); PNG is that SVG rasterized by resvg. Both libraries
 * load only here, when a picture is asked for.
 */

// vega and vega-lite are ES modules only; TypeScript's CommonJS output would turn a plain
// import() into require(), so the import is made at run time.
const importEsm = new Function('m', 'return import(m)') as (m: string) => Promise<any>; // eslint-disable-line

const MIB = 2 ** 20;

export function timelineSpec(t: TimelineBins, title = 'chronovol timeline'): Record<string, unknown> {
  const unit = t.sizeBytes >= 4 * MIB ? { div: MIB, name: 'MiB' } : { div: 1024, name: 'KiB' };
  const x = { field: 't0', type: 'temporal', title: 'time (UTC)', scale: { domain: [t.fromMs, t.toMs] }, axis: { format: '%H:%M:%S', labelOverlap: true } };
  const yMax = t.sizeBytes / unit.div;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle: `${t.versions} versions, ${t.events.length} sync events, seq ${t.fromSeq}..${t.toSeq}` },
    width: 720,
    height: 300,
    config: { font: 'sans-serif', view: { stroke: '#888' } },
    layer: [
      {
        // Archive-only history, shaded behind everything.
        data: { values: t.archived.map((a) => ({ ...a, what: 'archive only' })) },
        mark: { type: 'rect', color: '#f2e6c9', opacity: 0.8 },
        encoding: { x: { field: 't0', type: 'temporal' }, x2: { field: 't1' }, y: { datum: 0, type: 'quantitative' }, y2: { datum: yMax } },
      },
      {
        data: { values: t.cells.map((c) => ({ t0: c.t0, t1: c.t1, y0: c.a0 / unit.div, y1: c.a1 / unit.div, versions: c.count })) },
        mark: { type: 'rect' },
        encoding: {
          x,
          x2: { field: 't1' },
          y: { field: 'y0', type: 'quantitative', title: `block address (${unit.name})`, scale: { domain: [0, yMax], nice: false } },
          y2: { field: 'y1' },
          color: { field: 'versions', type: 'quantitative', title: 'versions written', scale: { type: 'log', scheme: 'blues' } },
        },
      },
      {
        data: { values: t.events.map((e) => ({ t: e.timeMs, name: e.label ? `${e.id} ${e.label}` : String(e.id), kind: e.kind })) },
        layer: [
          { mark: { type: 'rule', color: '#c0392b', strokeWidth: 1.5 }, encoding: { x: { field: 't', type: 'temporal' } } },
          { mark: { type: 'text', angle: 270, align: 'left', baseline: 'bottom', dx: 2, dy: -2, fontSize: 10, color: '#c0392b' }, encoding: { x: { field: 't', type: 'temporal' }, y: { datum: 0 }, text: { field: 'name' } } },
        ],
      },
    ],
  };
}

let charting: Promise<[any, any]> | undefined; // eslint-disable-line

/** Loads vega and vega-lite (once; about half a second). */
export function loadCharting(): Promise<[any, any]> { // eslint-disable-line
  return (charting ??= Promise.all([importEsm('vega'), importEsm('vega-lite')]));
}

export async function timelineSvg(t: TimelineBins, title?: string): Promise<string> {
  const [vega, vegaLite] = await loadCharting();
  // The explicit time domain meets the layers' data domains; vega-lite warns and takes their
  // union, which is what is wanted: keep its warnings off the CLI's stderr.
  const compiled = vegaLite.compile(timelineSpec(t, title), { logger: vega.logger(vega.Error) }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function svgToPng(svg: string): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  return Buffer.from(new Resvg(svg, { background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng());
}
