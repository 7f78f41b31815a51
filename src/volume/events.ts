import { ChronoError } from '../errors';
import { EventKindName } from '../format/constants';
import { TimeTable } from '../index/time-table';
import { ResyncWindows } from './resync-windows';

export interface SyncEvent {
  id: number;
  seq: number;
  timeMs: number;
  label: string;
  kind: EventKindName;
  /** Block versions written between the previous event and this one. */
  changedBlocks: number;
}

/** A resolved point in history: every version with seq ≤ seqLimit is visible. */
export interface Point {
  seqLimit: number;
  /** Canonical spelling, e.g. "event:3", "seq:120", "time:2026-…", "live". */
  name: string;
  timeMs?: number;
  event?: SyncEvent;
}

export const LIVE_SEQ = Number.MAX_SAFE_INTEGER;

/** The sync events of a volume, in order, and the grammar of points in time. */
export class EventList {
  readonly all: SyncEvent[] = [];
  /** Where the log holds no point at all (docs/REPLICATION.md): resolve refuses points inside. */
  readonly windows = new ResyncWindows();
  /** Events a forget removed: replay and the manifest still carry them, the list never does. */
  forgotten: (eventId: number) => boolean = () => false;

  add(e: SyncEvent): void {
    if (!this.forgotten(e.id)) this.all.push(e);
  }

  /** Removes forgotten events in place (the array is shared with readers of `all`). */
  drop(ids: ReadonlySet<number>): void {
    let w = 0;
    for (const e of this.all) if (!ids.has(e.id)) this.all[w++] = e;
    this.all.length = w;
  }

  byIdOrLabel(text: string): SyncEvent | undefined {
    if (/^\d+$/.test(text)) {
      const id = Number(text);
      const e = this.all.find((x) => x.id === id);
      if (e) return e;
    }
    // A label names the newest event carrying it: labels like "nightly" repeat.
    for (let i = this.all.length - 1; i >= 0; i--) if (this.all[i].label === text) return this.all[i];
    return undefined;
  }

  /**
   * `live`, an event id or label, `seq:<n>`, or an ISO-8601 time (the state after the last write
   * at or before it).
   */
  resolve(text: string, times: TimeTable, lastSeq: number, createdMs: number): Point {
    const p = this.resolveAny(text, times, lastSeq, createdMs);
    if (p.seqLimit !== LIVE_SEQ) this.windows.check(p.name, p.seqLimit, p.event ? undefined : p.timeMs);
    return p;
  }

  private resolveAny(text: string, times: TimeTable, lastSeq: number, createdMs: number): Point {
    const t = text.trim();
    if (t === 'live' || t === '') return { seqLimit: LIVE_SEQ, name: 'live' };
    const seqMatch = /^seq[:-](\d+)$/.exec(t);
    if (seqMatch) {
      const seq = Number(seqMatch[1]);
      if (seq > lastSeq) throw new ChronoError('UNKNOWN_POINT', `seq ${seq} is past the end of the log (last seq ${lastSeq})`, { point: text });
      return { seqLimit: seq, name: `seq:${seq}` };
    }
    const eventMatch = /^(?:event[:-])?(.+)$/.exec(t)!;
    const e = this.byIdOrLabel(eventMatch[1]) ?? (t.startsWith('event') ? undefined : this.byIdOrLabel(t));
    if (e) return { seqLimit: e.seq, name: `event:${e.id}`, event: e, timeMs: e.timeMs };
    if (/^\d{4}-\d{2}-\d{2}/.test(t)) {
      const ms = Date.parse(t);
      if (Number.isNaN(ms)) throw new ChronoError('UNKNOWN_POINT', `not a valid ISO-8601 time: ${text}`, { point: text });
      if (ms < createdMs - 1000) throw new ChronoError('UNKNOWN_POINT', `${text} is before the volume was created (${new Date(createdMs).toISOString()})`, { point: text });
      // A future time would name a state that keeps changing under a read-only image.
      if (ms > Date.now() + 1000) throw new ChronoError('UNKNOWN_POINT', `${text} is in the future; the current state is 'live'`, { point: text });
      const seq = times.seqAtOrBefore(ms);
      return { seqLimit: Math.max(seq, 0), name: `time:${new Date(ms).toISOString()}`, timeMs: ms };
    }
    throw new ChronoError('UNKNOWN_POINT', `no such point: '${text}' (use live, an event id or label, seq:<n>, or an ISO-8601 time)`, { point: text });
  }
}
