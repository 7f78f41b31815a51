import { ChronoError } from '../errors';
import { EventKindName } from '../format/constants';
import { TimeTable } from '../index/time-table';
import type { LostSpan } from '../format/manifest';
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

/** What resolution knows about events a forget removed (the volume's RetentionState). */
export interface ForgottenEvents {
  isForgotten(eventId: number): boolean;
  /** The id of the newest forgotten event that carried `label`, if a forget recorded one. */
  newestForgottenWithLabel(label: string): number | undefined;
  /** POINT_FORGOTTEN for a forgotten event, naming the nearest kept points; `name` is what was asked. */
  forgottenEvent(eventId: number, kept: readonly SyncEvent[], name?: string): ChronoError;
}

const NOTHING_FORGOTTEN: ForgottenEvents = {
  isForgotten: () => false,
  newestForgottenWithLabel: () => undefined,
  forgottenEvent: (id) => new ChronoError('POINT_FORGOTTEN', `event ${id} was forgotten`, { point: `event:${id}` }),
};

/** What resolving a point needs from the volume besides the event list. */
export interface ResolveContext {
  times: TimeTable;
  lastSeq: number;
  createdMs: number;
  /** The id the next event will get: ids below it were issued (kept, forgotten or lost). */
  nextEventId: number;
  /** The newest record's time (times are forced monotonic at append: no later record is older). */
  lastTimeMs: number;
  nowMs?: number;
}

/** The sync events of a volume, in order, and the grammar of points in time. */
export class EventList {
  readonly all: SyncEvent[] = [];
  /** Where the log holds no point at all (docs/REPLICATION.md): resolve refuses points inside. */
  readonly windows = new ResyncWindows();
  /** Spans a recovery could not know (LOST records): a time inside is refused (POINT_LOST). */
  readonly lost: LostSpan[] = [];
  /** Events a forget removed: replay and the manifest still carry them, the list never does. */
  retention: ForgottenEvents = NOTHING_FORGOTTEN;
  /**
   * Labels of forgotten events replay still met (newest id each): a forget made before labels
   * were recorded in retention.json is still caught while its EVENT records are in the log.
   */
  private readonly replayedForgottenLabels = new Map<string, number>();
  /**
   * The event of a sync whose records are not durable yet: in `all` (the checkpoint carries it),
   * but nothing resolves it until its sync returns. A crash before then cuts it and its id goes
   * to the next event: had it been served, one name would have meant two states.
   */
  private notDurable?: number;

  holdUntilDurable(eventId: number): void {
    this.notDurable = eventId;
  }

  /** Its sync made it durable: it resolves from now on. */
  durable(eventId: number): void {
    if (this.notDurable === eventId) this.notDurable = undefined;
  }

  isDurable(eventId: number): boolean {
    return this.notDurable !== eventId;
  }

  /** `all` without the one event whose sync has not returned: what anything lists or names. */
  get durableAll(): readonly SyncEvent[] {
    if (this.notDurable === undefined) return this.all;
    return this.all.filter((e) => e.id !== this.notDurable);
  }

  add(e: SyncEvent): void {
    if (!this.retention.isForgotten(e.id)) this.all.push(e);
    else if (e.label && (this.replayedForgottenLabels.get(e.label) ?? 0) < e.id) this.replayedForgottenLabels.set(e.label, e.id);
  }

  /** Removes forgotten events in place (the array is shared with readers of `all`). */
  drop(ids: ReadonlySet<number>): void {
    let w = 0;
    for (const e of this.all) if (!ids.has(e.id)) this.all[w++] = e;
    this.all.length = w;
  }

  /** Labels replay met on forgotten events, for the next forget to record. */
  forgottenLabelsSeen(): ReadonlyMap<string, number> {
    return this.replayedForgottenLabels;
  }

  /**
   * The kept event `text` names, by the one rule every edge uses (FUSE events/, NBD, the CLI):
   * - digits, `event:<n>` or `event-<n>`: event id n. A forgotten id is POINT_FORGOTTEN, never
   *   another event; `event:` never matches a label; bare digits fall back to a label only when
   *   no event ever had that id (ids are issued in order, so an id once issued keeps its meaning);
   * - anything else: a label, naming the newest event that ever carried it. If that event was
   *   forgotten the label is POINT_FORGOTTEN, never an older event that carries it too.
   * undefined when nothing matches (the caller decides whether the text is a time).
   */
  lookup(text: string, nextEventId: number): SyncEvent | undefined {
    const t = text.trim();
    const prefixed = /^event[:-](.*)$/.exec(t);
    const idText = prefixed ? prefixed[1] : t;
    if (/^\d+$/.test(idText)) {
      const id = Number(idText);
      const e = this.all.find((x) => x.id === id);
      if (e) return this.isDurable(e.id) ? e : undefined;
      if (this.retention.isForgotten(id)) throw this.retention.forgottenEvent(id, this.all, t);
      if (prefixed || id < nextEventId) return undefined;
    } else if (prefixed) {
      return undefined;
    }
    return this.byLabel(t);
  }

  private byLabel(label: string): SyncEvent | undefined {
    let kept: SyncEvent | undefined;
    for (let i = this.all.length - 1; i >= 0 && !kept; i--) if (this.all[i].label === label && this.isDurable(this.all[i].id)) kept = this.all[i];
    const gone = Math.max(this.retention.newestForgottenWithLabel(label) ?? 0, this.replayedForgottenLabels.get(label) ?? 0);
    if (gone > (kept?.id ?? 0)) throw this.retention.forgottenEvent(gone, this.all, label);
    return kept;
  }

  /**
   * `live`, an event id or label, `seq:<n>`, or an ISO-8601 time (the state after the last write
   * at or before it). Every point but `live` is checked against the resync windows.
   */
  resolve(text: string, ctx: ResolveContext): Point {
    const p = this.resolveAny(text, ctx);
    if (p.seqLimit !== LIVE_SEQ) this.checkWindows(p, ctx.times);
    if (p.timeMs !== undefined && !p.event) this.checkLost(p.name, p.timeMs);
    return p;
  }

  /**
   * `live` turned into the state it holds now (`seq:<lastSeq>`), for whatever keeps a point for
   * good (a clone's base, a pin, restore): POINT_IN_RESYNC while a window makes live a torn mix.
   */
  fixLive(ctx: ResolveContext): Point {
    this.checkWindows({ seqLimit: ctx.lastSeq, name: `live (now seq:${ctx.lastSeq})` }, ctx.times);
    return { seqLimit: ctx.lastSeq, name: `seq:${ctx.lastSeq}` };
  }

  /**
   * POINT_LOST for a time inside a span a recovery could not know: the volume was written then
   * (or may have been), but those records never reached the archive, so the recovered history's
   * last state is not the state at that time (DESIGN rule 27).
   */
  private checkLost(name: string, timeMs: number): void {
    const s = this.lost.find((x) => timeMs >= x.fromMs && timeMs < x.toMs);
    if (!s) return;
    throw new ChronoError('POINT_LOST', `${name} falls between ${new Date(s.fromMs).toISOString()} (the last record the archive held, seq ${s.lastSeq}) and ${new Date(s.toMs).toISOString()} (the recovery): what the volume held then was never archived; choose seq:${s.seq} (the recovered state) or a time after the recovery`, { point: name, lastSeq: s.lastSeq, fromMs: s.fromMs, toMs: s.toMs });
  }

  /** POINT_IN_RESYNC for a point inside a window: by seq for every point, by time for times too. */
  checkWindows(p: Point, times: TimeTable): void {
    this.windows.check(p.name, p.seqLimit, p.event ? undefined : p.timeMs, (ms) => times.seqAtOrBefore(ms));
  }

  private resolveAny(text: string, ctx: ResolveContext): Point {
    const t = text.trim();
    if (t === 'live' || t === '') return { seqLimit: LIVE_SEQ, name: 'live' };
    const seqMatch = /^seq[:-](\d+)$/.exec(t);
    if (seqMatch) {
      const seq = Number(seqMatch[1]);
      if (seq > ctx.lastSeq) throw new ChronoError('UNKNOWN_POINT', `seq ${seq} is past the end of the log (last seq ${ctx.lastSeq})`, { point: text });
      return { seqLimit: seq, name: `seq:${seq}` };
    }
    const e = this.lookup(t, ctx.nextEventId);
    if (e) return { seqLimit: e.seq, name: `event:${e.id}`, event: e, timeMs: e.timeMs };
    const iso = /^(?:time:)?(\d{4}-\d{2}-\d{2}.*)$/.exec(t); // `time:<iso>` is a time point's canonical name
    if (iso) {
      const ms = Date.parse(iso[1]);
      if (Number.isNaN(ms)) throw new ChronoError('UNKNOWN_POINT', `not a valid ISO-8601 time: ${text}`, { point: text });
      if (ms < ctx.createdMs - 1000) throw new ChronoError('UNKNOWN_POINT', `${text} is before the volume was created (${new Date(ctx.createdMs).toISOString()})`, { point: text });
      // A time names a fixed state only once no later record can fall at or before it: every
      // later record's time is at least now and at least the newest record's (times are forced
      // monotonic at append). So the current millisecond, and any later one, is refused.
      const final = Math.max(ctx.nowMs ?? Date.now(), ctx.lastTimeMs);
      if (ms >= final) throw new ChronoError('UNKNOWN_POINT', `${text} is in the future or not over yet (a later write can still land at or before it); the current state is 'live'`, { point: text });
      const seq = ctx.times.seqAtOrBefore(ms);
      return { seqLimit: Math.max(seq, 0), name: `time:${new Date(ms).toISOString()}`, timeMs: ms };
    }
    if (/^event[:-]/.test(t)) throw new ChronoError('UNKNOWN_POINT', `no such event: '${text}' (event:<id> takes an event id; a label is given as it is)`, { point: text });
    throw new ChronoError('UNKNOWN_POINT', `no such point: '${text}' (use live, an event id or label, seq:<n>, or an ISO-8601 time)`, { point: text });
  }
}
