import { ChronoError } from '../errors';
import { DEFAULTS } from '../options';
import type { Volume } from '../volume/volume';
import { pinPoint } from './queries';

/** What `timeline` asks for: a window of history and the grid to aggregate it into. */
export interface TimelineRequest {
  from?: string;
  to?: string;
  /** Only the last this many ms of the window (the tree's recent picture). */
  lastMs?: number;
  timeBins?: number;
  blockBins?: number;
}

/**
 * Versions aggregated into a time × block-address grid before anything is drawn, so the
 * picture's size depends on the grid, never on the history's length (10^7 versions still make
 * at most timeBins × blockBins cells).
 */
export interface TimelineBins {
  fromMs: number;
  toMs: number;
  fromSeq: number;
  toSeq: number;
  sizeBytes: number;
  blockSizeBytes: number;
  versions: number;
  /** Non-empty cells only: [t0, t1) ms × [a0, a1) bytes, with how many versions fell in it. */
  cells: Array<{ t0: number; t1: number; a0: number; a1: number; count: number }>;
  events: Array<{ id: number; label: string; kind: string; timeMs: number; seq: number }>;
  /** Time spans whose data versions are held only by the archive (evicted from primary). */
  archived: Array<{ t0: number; t1: number }>;
}

export function timelineRequest(p: Record<string, unknown>): TimelineRequest {
  const num = (v: unknown) => (v === undefined || v === null ? undefined : Number(v));
  return { from: p.from as string | undefined, to: p.to as string | undefined, lastMs: num(p.lastMs), timeBins: num(p.timeBins), blockBins: num(p.blockBins) };
}

export function timelineOf(vol: Volume, r: TimelineRequest): TimelineBins {
  const times = { timeOfSeq: (s: number) => vol.timeOfSeq(s), seqAtOrBefore: (t: number) => vol.seqAtOrBefore(t) };
  const T = r.timeBins ?? DEFAULTS.timelineTimeBins;
  const B = r.blockBins ?? DEFAULTS.timelineBlockBins;
  if (!(T >= 1 && T <= 65535 && B >= 1 && T * B <= 1_000_000)) throw new ChronoError('BAD_ARGUMENT', `bad timeline grid ${T} x ${B}`);
  let fromSeq = r.from ? pinPoint(vol, vol.resolvePoint(r.from)).seqLimit : 0;
  const toSeq = r.to ? pinPoint(vol, vol.resolvePoint(r.to)).seqLimit : vol.lastSeq;
  if (fromSeq > toSeq) throw new ChronoError('BAD_ARGUMENT', `--from (seq ${fromSeq}) is after --to (seq ${toSeq})`);
  if (toSeq - fromSeq > 2 ** 28) throw new ChronoError('BAD_ARGUMENT', `a timeline spans at most 2^28 seqs; narrow it with --from/--to`);
  const endMs = toSeq > 0 ? Math.max(times.timeOfSeq(toSeq), vol.createdMs) : vol.createdMs;
  let startMs = fromSeq > 0 ? times.timeOfSeq(fromSeq) : vol.createdMs;
  if (r.lastMs !== undefined && endMs - r.lastMs > startMs) {
    startMs = endMs - r.lastMs;
    fromSeq = Math.max(fromSeq, times.seqAtOrBefore(startMs));
  }
  // Never a zero-width axis: one ms at least.
  const spanMs = Math.max(1, endMs - startMs);
  // Column k holds seqs in (seqEdge[k], seqEdge[k+1]]: a version finds its column by seq alone.
  const seqEdge = new Float64Array(T + 1);
  seqEdge[0] = fromSeq;
  for (let k = 1; k < T; k++) seqEdge[k] = Math.min(toSeq, Math.max(fromSeq, times.seqAtOrBefore(startMs + (spanMs * k) / T)));
  seqEdge[T] = toSeq;
  const counts = new Float64Array(T * B);
  const archivedByCol = new Float64Array(T);
  const versionsByCol = new Float64Array(T);
  const blocks = Math.ceil(vol.sizeBytes / vol.blockSizeBytes);
  const perRow = blocks / B;
  let versions = 0;
  // Runs visit in block order, so consecutive versions rarely share a column: a table from seq
  // to column (seqs number records, far fewer than versions) makes the lookup one load.
  const colOfSeq = new Uint16Array(toSeq - fromSeq + 1);
  for (let k = 0; k < T; k++) colOfSeq.fill(k, seqEdge[k] - fromSeq + 1, seqEdge[k + 1] - fromSeq + 1);
  vol.versionsInSeqRange(fromSeq, toSeq, (block, seq, dataInPrimary, hasData) => {
    const col = colOfSeq[seq - fromSeq];
    counts[col * B + Math.min(B - 1, Math.floor(block / perRow))]++;
    versionsByCol[col]++;
    if (hasData && !dataInPrimary) archivedByCol[col]++;
    versions++;
  });
  const colMs = spanMs / T;
  const bytesPerRow = vol.sizeBytes / B;
  const cells: TimelineBins['cells'] = [];
  for (let k = 0; k < T; k++) {
    for (let b = 0; b < B; b++) {
      const count = counts[k * B + b];
      if (count) cells.push({ t0: Math.round(startMs + k * colMs), t1: Math.round(startMs + (k + 1) * colMs), a0: Math.round(b * bytesPerRow), a1: Math.round((b + 1) * bytesPerRow), count });
    }
  }
  // Spans of archive-only columns, joined across columns where nothing was written at all.
  const archived: TimelineBins['archived'] = [];
  let spanEndCol = -2;
  for (let k = 0; k < T; k++) {
    if (!archivedByCol[k]) {
      if (versionsByCol[k]) spanEndCol = -2;
      continue;
    }
    const t1 = Math.round(startMs + (k + 1) * colMs);
    if (spanEndCol >= 0) archived[archived.length - 1].t1 = t1;
    else archived.push({ t0: Math.round(startMs + k * colMs), t1 });
    spanEndCol = k;
  }
  const events = vol.events.filter((e) => e.seq >= fromSeq && e.seq <= toSeq && e.timeMs >= startMs).map((e) => ({ id: e.id, label: e.label, kind: e.kind, timeMs: e.timeMs, seq: e.seq }));
  return { fromMs: startMs, toMs: startMs + spanMs, fromSeq, toSeq, sizeBytes: vol.sizeBytes, blockSizeBytes: vol.blockSizeBytes, versions, cells, events, archived };
}
