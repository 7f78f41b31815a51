import { createHash } from 'node:crypto';
import { ChronoError } from '../errors';
import { Changes, pinPoint } from '../service/images';
import type { Volume } from '../volume/volume';

/**
 * The answers `diff` and `history` print, computed from an open volume. The CLI runs them on a
 * volume it opened read-only, or the daemon that holds the volume runs them for it over the
 * control socket (control-server.ts): the same code either way, so the two answers cannot drift.
 */

export interface DiffResult extends Changes {
  /** The seq the <to> point stood at when asked (`live` moves on; --out reads at this seq). */
  toSeq: number;
}

export { pinPoint };

export function diffOf(vol: Volume, fromText: string, toText: string): DiffResult {
  const from = pinPoint(vol, vol.resolvePoint(fromText));
  const to = pinPoint(vol, vol.resolvePoint(toText));
  return { ...vol.changesBetween(from, to), toSeq: to.seqLimit };
}

export interface HistoryRow {
  block: number;
  seq: number;
  timeMs: number;
  kind: string;
  event?: { id: number; label: string };
  offset: number;
  time: string | null;
  sha256?: string;
}

export interface HistoryResult {
  blockSizeBytes: number;
  firstBlock: number;
  blockCount: number;
  versions: HistoryRow[];
}

export async function historyOf(vol: Volume, offset: number, lengthBytes: number, hash: boolean): Promise<HistoryResult> {
  if (!(lengthBytes >= 1)) throw new ChronoError('BAD_ARGUMENT', '--length must be at least 1');
  if (!(offset >= 0) || offset + lengthBytes > vol.sizeBytes) throw new ChronoError('OUT_OF_RANGE', `range ${offset}+${lengthBytes} runs past the end of the ${vol.sizeBytes}-byte volume`);
  const bs = vol.blockSizeBytes;
  const first = Math.floor(offset / bs);
  const end = Math.ceil((offset + lengthBytes) / bs);
  const versions: HistoryRow[] = [];
  for (const v of vol.blockHistory(first, end - first)) {
    const sha256 = hash ? createHash('sha256').update(await vol.readVersion(v.block, v.seq)).digest('hex').slice(0, 16) : undefined;
    versions.push({ ...v, offset: v.block * bs, time: v.timeMs >= 0 ? new Date(v.timeMs).toISOString() : null, ...(sha256 ? { sha256 } : {}) });
  }
  return { blockSizeBytes: bs, firstBlock: first, blockCount: end - first, versions };
}

export interface ProbePoint {
  /** How the point is named to clone and diff: `event:<id>` or `seq:<n>`. */
  name: string;
  seq: number;
  label?: string;
}

export interface BisectPoints {
  good: ProbePoint;
  bad: ProbePoint;
  /** The candidates after good up to bad, oldest first; the last is bad itself. */
  points: ProbePoint[];
}

/**
 * What bisect searches: the events after --good up to --bad (--bad last, whatever it is), or
 * with `writes` every seq a version was written at in between that is still a point (not in a
 * span a forget thinned).
 */
export function bisectPoints(vol: Volume, goodText: string, badText: string, writes: boolean): BisectPoints {
  const named = (text: string): ProbePoint => {
    const p = pinPoint(vol, vol.resolvePoint(text));
    return p.event ? { name: `event:${p.event.id}`, seq: p.seqLimit, label: p.event.label } : { name: `seq:${p.seqLimit}`, seq: p.seqLimit };
  };
  const good = named(goodText);
  const bad = named(badText);
  if (good.seq >= bad.seq) throw new ChronoError('BAD_ARGUMENT', `--good (${good.name}, seq ${good.seq}) must come before --bad (${bad.name}, seq ${bad.seq})`);
  let points: ProbePoint[];
  if (writes) {
    const seqs = new Set<number>();
    vol.versionsInSeqRange(good.seq, bad.seq, (_b, seq) => void seqs.add(seq));
    // Only whole points: a write in a span a forget thinned is no point any more (POINT_FORGOTTEN).
    const whole = vol.retention.reachability(vol.events);
    points = [...seqs].filter((s) => s < bad.seq && whole(s)).sort((a, b) => a - b).map((seq) => ({ name: `seq:${seq}`, seq }));
  } else {
    points = vol.events.filter((e) => e.seq > good.seq && e.seq < bad.seq).map((e) => ({ name: `event:${e.id}`, seq: e.seq, label: e.label }));
  }
  return { good, bad, points: [...points, bad] };
}
