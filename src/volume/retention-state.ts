import * as path from 'node:path';
import { ChronoError } from '../errors';
import { FILE_NAMES } from '../format/constants';
import { writeFileDurable } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';
import { countedHold } from '../util/counted-hold';
import type { ForgottenEvents, Point, SyncEvent } from './events';
import { LIVE_SEQ } from './events';

/** A hold on a point: while it exists, no forget drops the point and no prune its versions. */
export interface Pin {
  seq: number;
  /** The canonical point it was asked for (`event:<id>`, `seq:<n>`, `time:<iso>`). */
  point: string;
  eventId: number | null;
  reason: string;
  /** Who holds it: `user` (pin/unpin), `clone:<name>`, `rollback:<label>`, `rollback-target:<label>`. */
  holder: string;
  createdAt: string;
}

/** `retention.json` (docs/FORMAT.md): pins, the event ids forgotten, where the continuous span starts. */
interface RetentionFile {
  version: 1;
  pins: Pin[];
  /** Inclusive [first, last] event-id ranges, ascending, disjoint. */
  forgotten: Array<[number, number]>;
  /** Every point at or after this seq is reachable; before it, only kept events and pins. */
  continuousFromSeq: number;
  /**
   * [label, event id] pairs, one per label, sorted by label: the newest forgotten event that
   * carried each label. Absent in files written before labels were recorded.
   */
  forgottenLabels?: Array<[string, number]>;
}

/**
 * The volume's retention state, in memory and in `<dir>/retention.json`. Every change is
 * written durably (temp, fsync, rename, fsync dir) before it is acted on: a pin holds once pin()
 * returns, and a forgotten event is refused from the moment forget returns, also after a crash.
 */
export class RetentionState implements ForgottenEvents {
  private constructor(private readonly fs: FileSystem, private readonly file: string, private data: RetentionFile) {}

  static load(fs: FileSystem, root: string): RetentionState {
    const file = path.join(root, FILE_NAMES.retention);
    if (!fs.exists(file)) return new RetentionState(fs, file, { version: 1, pins: [], forgotten: [], continuousFromSeq: 0 });
    let d: RetentionFile;
    try {
      d = JSON.parse(fs.readFile(file).toString('utf8')) as RetentionFile;
    } catch (err) {
      throw new ChronoError('BAD_CHECKSUM', `${file} is not valid JSON`, { file }, err);
    }
    if (d.version !== 1) throw new ChronoError('BAD_VERSION', `${file} has version ${String(d.version)}; this build reads 1`, { file });
    if (!Array.isArray(d.pins) || !Array.isArray(d.forgotten) || !Number.isSafeInteger(d.continuousFromSeq)) throw new ChronoError('BAD_LENGTH', `${file} lacks pins, forgotten or continuousFromSeq`, { file });
    if (d.forgottenLabels !== undefined && !(Array.isArray(d.forgottenLabels) && d.forgottenLabels.every((x) => Array.isArray(x) && typeof x[0] === 'string' && Number.isSafeInteger(x[1])))) {
      throw new ChronoError('BAD_LENGTH', `${file}: forgottenLabels is not a list of [label, event id] pairs`, { file });
    }
    return new RetentionState(fs, file, d);
  }

  get pins(): readonly Pin[] {
    return this.data.pins;
  }
  get continuousFromSeq(): number {
    return this.data.continuousFromSeq;
  }
  get forgottenRanges(): ReadonlyArray<readonly [number, number]> {
    return this.data.forgotten;
  }

  isForgotten(eventId: number): boolean {
    const r = this.data.forgotten;
    let lo = 0;
    let hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (eventId < r[mid][0]) hi = mid - 1;
      else if (eventId > r[mid][1]) lo = mid + 1;
      else return true;
    }
    return false;
  }

  /** The newest forgotten event that carried `label` (recorded by forget), if any. */
  newestForgottenWithLabel(label: string): number | undefined {
    const r = this.data.forgottenLabels;
    if (!r) return undefined;
    let lo = 0;
    let hi = r.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (r[mid][0] === label) return r[mid][1];
      if (r[mid][0] < label) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  pinnedSeqs(): Set<number> {
    return new Set(this.data.pins.map((p) => p.seq));
  }

  /**
   * Holds in memory (an export in progress): a held seq is kept like a pinned one by forget,
   * prune and the held-point check, but is never written (it dies with the process, as the
   * reader does) and is not listed among the pins.
   */
  private readonly holds = new Map<number, number>();

  /** Holds `seq` until the returned release is called (once). */
  hold(seq: number): () => void {
    return countedHold(this.holds, seq);
  }

  /** The seqs kept for good or for now: pins, then holds. */
  keptPointSeqs(): number[] {
    return [...this.data.pins.map((p) => p.seq), ...this.holds.keys()];
  }

  addPin(p: Pin): void {
    this.commit({ ...this.data, pins: [...this.data.pins, p] });
  }

  /** Removes the pins `holder` has at `seq`; returns how many went. */
  removePins(seq: number, holder: string): number {
    const pins = this.data.pins.filter((p) => !(p.seq === seq && p.holder === holder));
    const n = this.data.pins.length - pins.length;
    if (n > 0) this.commit({ ...this.data, pins });
    return n;
  }

  /**
   * Records events as forgotten, with the labels they carried (`labels`: [label, event id], the
   * newest id per label kept), and moves the continuous span's start (never back).
   */
  forget(eventIds: readonly number[], continuousFromSeq: number, labels: ReadonlyArray<readonly [string, number]> = []): void {
    const ranges: Array<[number, number]> = [...this.data.forgotten.map(([a, b]): [number, number] => [a, b]), ...eventIds.map((id): [number, number] => [id, id])];
    const byLabel = new Map<string, number>(this.data.forgottenLabels ?? []);
    for (const [label, id] of labels) if (label && (byLabel.get(label) ?? 0) < id) byLabel.set(label, id);
    const forgottenLabels = [...byLabel].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.commit({ ...this.data, forgotten: mergeRanges(ranges), continuousFromSeq: Math.max(this.data.continuousFromSeq, continuousFromSeq), ...(forgottenLabels.length ? { forgottenLabels } : {}) });
  }

  /**
   * Refuses a point a forget has thinned away: before the continuous span, only kept events and
   * pinned points are still whole. Names the nearest points that are.
   */
  checkPoint(point: Point, kept: readonly SyncEvent[]): void {
    const s = point.seqLimit;
    if (this.reachability(kept)(s)) return;
    throw forgottenError(`${point.name} lies in a span a forget thinned`, nearestKept(kept, this.data.pins, s, this.data.continuousFromSeq), point.name);
  }

  /**
   * checkPoint for a point resolved earlier and read through now (the read path: every read of a
   * held point, DESIGN rule 25): the common cases without building anything. A kept event is
   * whole by its id, a pinned point by its seq.
   */
  checkHeldPoint(point: Point, kept: readonly SyncEvent[]): void {
    const s = point.seqLimit;
    if (s === LIVE_SEQ || s === 0 || s >= this.data.continuousFromSeq) return;
    if (point.event && point.event.seq === s && !this.isForgotten(point.event.id)) return;
    if (this.holds.has(s) || this.data.pins.some((p) => p.seq === s)) return;
    this.checkPoint(point, kept);
  }

  /** Which seqLimits are still whole points (the ones checkPoint passes): for callers that list many, such as bisect --writes. */
  reachability(kept: readonly SyncEvent[]): (seqLimit: number) => boolean {
    const from = this.data.continuousFromSeq;
    let whole: Set<number> | undefined; // built only once a seq before the span asks (resolvePoint rarely does)
    return (s) => s === LIVE_SEQ || s === 0 || s >= from || (whole ??= new Set([...kept.map((e) => e.seq), ...this.keptPointSeqs()])).has(s);
  }

  /** The error for an event that was forgotten, asked for as `name` (its id, or a label it carried last). */
  forgottenEvent(eventId: number, kept: readonly SyncEvent[], name = `event:${eventId}`): ChronoError {
    const before = [...kept].reverse().find((e) => e.id < eventId);
    const after = kept.find((e) => e.id > eventId);
    const what = /^(?:event[:-])?\d+$/.test(name) ? `event ${eventId} was forgotten` : `'${name}' last named event ${eventId}, which was forgotten`;
    return forgottenError(what, { before: before && describeEvent(before), after: after && describeEvent(after) }, name);
  }

  /** The file's content, as the archive catalog records it (prune). */
  snapshot(): { pins: Pin[]; forgotten: Array<[number, number]>; forgottenLabels?: Array<[string, number]>; continuousFromSeq: number } {
    const labels = this.data.forgottenLabels;
    return {
      pins: this.data.pins.map((p) => ({ ...p })),
      forgotten: this.data.forgotten.map(([a, b]): [number, number] => [a, b]),
      ...(labels?.length ? { forgottenLabels: labels.map(([l, id]): [string, number] => [l, id]) } : {}),
      continuousFromSeq: this.data.continuousFromSeq,
    };
  }

  private commit(next: RetentionFile): void {
    writeFileDurable(this.fs, this.file, Buffer.from(JSON.stringify(next, null, 2) + '\n'));
    this.data = next;
  }
}

interface Nearest {
  before?: string;
  after?: string;
}

function describeEvent(e: SyncEvent): string {
  return `event:${e.id} (${new Date(e.timeMs).toISOString()}${e.label ? `, '${e.label}'` : ''})`;
}

function nearestKept(kept: readonly SyncEvent[], pins: readonly Pin[], s: number, continuousFromSeq: number): Nearest {
  const points = [...kept.map((e) => ({ seq: e.seq, text: describeEvent(e) })), ...pins.map((p) => ({ seq: p.seq, text: `${p.point} (pinned: ${p.reason})` }))].sort((a, b) => a.seq - b.seq);
  const before = [...points].reverse().find((p) => p.seq < s);
  const after = points.find((p) => p.seq > s);
  return { before: before?.text, after: after?.text ?? `seq:${continuousFromSeq} (every point from there on is kept)` };
}

function forgottenError(what: string, n: Nearest, point: string): ChronoError {
  const near = [n.before && `before it ${n.before}`, n.after && `after it ${n.after}`].filter(Boolean).join('; ');
  return new ChronoError('POINT_FORGOTTEN', `${what}; the nearest kept points: ${near || 'none but live'}`, { point, before: n.before ?? null, after: n.after ?? null });
}

function mergeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  ranges.sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of ranges) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** retention.json for a recovered volume, from the archive catalog's retention state (durably). */
export function writeRetentionFromCatalog(fs: FileSystem, root: string, catalog: { body: { retention: { pins: unknown[]; forgotten: Array<[number, number]>; forgottenLabels?: Array<[string, number]>; continuousFromSeq: number } } }, historyEndSeq = Infinity): void {
  const r = catalog.body.retention;
  // A span start past the recovered history (a forget moved it into the lost tail) would thin
  // the new history the recovered volume writes from `historyEndSeq` on: nobody forgot any of it.
  const data: RetentionFile = { version: 1, pins: r.pins as Pin[], forgotten: r.forgotten, continuousFromSeq: Math.min(r.continuousFromSeq, historyEndSeq), ...(r.forgottenLabels?.length ? { forgottenLabels: r.forgottenLabels } : {}) };
  writeFileDurable(fs, path.join(root, FILE_NAMES.retention), Buffer.from(JSON.stringify(data, null, 2) + '\n'));
}
