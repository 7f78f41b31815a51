import { EventKindName, RecordType } from '../format/constants';
import { ManifestBody } from '../format/manifest';
import { HEADER_BYTES, RecordHeader, decodeEventPayload, decodeLostPayload, decodeResyncPayload, encodeEventPayload, unitBytes } from '../format/record';
import { VersionIndex } from '../index/version-index';
import { SegmentSet } from '../segment/segment-set';
import { EventList, SyncEvent } from './events';

export interface VolumeCounters {
  /** User bytes written (data and zeros), the denominator of write amplification. */
  bytesWritten: number;
  /** Bytes of block data rewritten by copy-forward. */
  copyForwardBytes: number;
  versions: number;
}

/** Where the log stands: what a checkpoint records and an open resumes from. */
export type LogPosition = Pick<ManifestBody, 'nextSeq' | 'nextEventId' | 'lastTimeMs' | 'changedSinceEvent' | 'events' | 'windows' | 'lost' | 'stats'>;

type ZeroType = typeof RecordType.ZERO | typeof RecordType.TRIM;

/**
 * The one owner of "append a record, then apply it". It hands out sequence numbers and record
 * times, appends to the current segment, and applies what the record means to the in-memory
 * state (the index and the event list sit behind it), with the counters. Replay and recover
 * apply records read back through `apply`, so appending and replaying cannot drift apart.
 * Callers make room first (turnover.ts ensureSpace / rollover).
 */
export class VolumeLog {
  private seq: number;
  private eventId: number;
  private timeMs: number;
  private changed: number;
  private readonly stats: VolumeCounters;
  private readonly unit: number;

  /** `segments` is absent for a log that is only applied (recover rebuilds an index so). */
  constructor(private readonly blockSizeBytes: number, private readonly index: VersionIndex, readonly events: EventList, private readonly segments?: SegmentSet, from?: Partial<LogPosition>) {
    this.seq = from?.nextSeq ?? 1;
    this.eventId = from?.nextEventId ?? 1;
    this.timeMs = from?.lastTimeMs ?? 0;
    this.changed = from?.changedSinceEvent ?? 0;
    this.stats = from?.stats ? { ...from.stats } : { bytesWritten: 0, copyForwardBytes: 0, versions: 0 };
    for (const e of from?.events ?? []) events.add(e);
    for (const w of from?.windows ?? []) events.windows.begin({ ...w });
    for (const s of from?.lost ?? []) events.lost.push({ ...s });
    this.unit = unitBytes(blockSizeBytes);
  }

  get nextSeq(): number {
    return this.seq;
  }
  get nextEventId(): number {
    return this.eventId;
  }
  get lastTimeMs(): number {
    return this.timeMs;
  }
  get counters(): Readonly<VolumeCounters> {
    return this.stats;
  }

  /** The state a checkpoint records (a copy: the log moves on while it is written). */
  position(): LogPosition {
    return { nextSeq: this.seq, nextEventId: this.eventId, lastTimeMs: this.timeMs, events: this.events.all.slice(), windows: this.events.windows.all.map((w) => ({ ...w })), lost: this.events.lost.map((s) => ({ ...s })), changedSinceEvent: this.changed, stats: { ...this.stats } };
  }

  /** Monotonic wall-clock milliseconds, so time lookups see a sorted log. */
  private now(): number {
    this.timeMs = Math.max(Date.now(), this.timeMs);
    return this.timeMs;
  }

  /** One WRITE record of `count` blocks taken from `buf` at `bufOffset`. */
  appendWrite(firstBlock: number, count: number, buf: Buffer, bufOffset: number): void {
    const h: RecordHeader = { type: RecordType.WRITE, blockCount: count, seq: this.seq, timeMs: this.now(), firstBlock, payloadLength: count * this.unit, originSegment: 0, originOffset: 0 };
    const current = this.segments!.current;
    this.apply(current.id, current.appendBlocks(h, buf, bufOffset, this.blockSizeBytes), h);
  }

  /** One data-less ZERO or TRIM record. */
  appendZero(firstBlock: number, count: number, type: ZeroType): void {
    const h: RecordHeader = { type, blockCount: count, seq: this.seq, timeMs: this.now(), firstBlock, payloadLength: 0, originSegment: 0, originOffset: 0 };
    const current = this.segments!.current;
    this.apply(current.id, current.append(h), h);
  }

  /** The payload of the next EVENT record: its size is what the caller makes room for. */
  eventPayload(kind: EventKindName, label: string): Buffer {
    // An id a forget recorded keeps naming that forgotten event: never issued again (a retention
    // state ahead of the log, as a recovery once left, would otherwise hide the new event).
    while (this.events.retention.isForgotten(this.eventId)) this.eventId++;
    return encodeEventPayload({ eventId: this.eventId, kind, label });
  }

  /** The EVENT record for a payload from eventPayload(); returns the event it records, never another. */
  appendEvent(payload: Buffer): SyncEvent {
    const h: RecordHeader = { type: RecordType.EVENT, blockCount: 0, seq: this.seq, timeMs: this.now(), firstBlock: 0, payloadLength: payload.length, originSegment: 0, originOffset: 0 };
    const current = this.segments!.current;
    this.apply(current.id, current.append(h, (buf, pos) => payload.copy(buf, pos)), h, payload);
    const e = this.events.all[this.events.all.length - 1];
    if (e?.seq !== h.seq) throw new Error(`internal: the event recorded at seq ${h.seq} is not in the event list`); // eventPayload rules it out
    return e;
  }

  /** A RESYNC_BEGIN or RESYNC_END record (encodeResyncPayload); resync windows follow from it. */
  appendResync(type: typeof RecordType.RESYNC_BEGIN | typeof RecordType.RESYNC_END, payload: Buffer): void {
    const h: RecordHeader = { type, blockCount: 0, seq: this.seq, timeMs: this.now(), firstBlock: 0, payloadLength: payload.length, originSegment: 0, originOffset: 0 };
    const current = this.segments!.current;
    this.apply(current.id, current.append(h, (buf, pos) => payload.copy(buf, pos)), h, payload);
  }

  /** The LOST record a recovery appends first (encodeLostPayload): its own seq, stamped now. */
  appendLost(payload: Buffer): void {
    const h: RecordHeader = { type: RecordType.LOST, blockCount: 0, seq: this.seq, timeMs: this.now(), firstBlock: 0, payloadLength: payload.length, originSegment: 0, originOffset: 0 };
    const current = this.segments!.current;
    this.apply(current.id, current.append(h, (buf, pos) => payload.copy(buf, pos)), h, payload);
  }

  /** A COPY or COPY_ZERO record: an existing version (its own seq and time) in a new place. */
  appendCopy(h: RecordHeader, units?: Buffer): void {
    const current = this.segments!.current;
    this.apply(current.id, current.append(h, units && ((buf, pos) => units.copy(buf, pos))), h);
  }

  /**
   * What a record means to the in-memory state: the one place that knows it. `countCopies`
   * false re-applies a COPY only for its relocation (replay below a checkpoint that counted it).
   */
  apply(segment: number, offset: number, h: RecordHeader, payload?: Buffer, countCopies = true): void {
    const bs = this.blockSizeBytes;
    switch (h.type) {
      case RecordType.WRITE:
      case RecordType.ZERO:
      case RecordType.TRIM: {
        // New versions. Offset 0 marks "no data": a zero version, recorded in this segment.
        const data = h.type === RecordType.WRITE;
        for (let i = 0; i < h.blockCount; i++) this.index.add(h.firstBlock + i, h.seq, segment, data ? offset + HEADER_BYTES + i * this.unit : 0);
        this.index.noteTime(h.timeMs, h.seq);
        this.stats.bytesWritten += h.blockCount * bs;
        this.stats.versions += h.blockCount;
        this.changed += h.blockCount;
        break;
      }
      case RecordType.COPY:
      case RecordType.COPY_ZERO: {
        // Existing versions in a new place (copy-forward); the index itself is unchanged.
        const data = h.type === RecordType.COPY;
        for (let i = 0; i < h.blockCount; i++) this.index.relocate(h.firstBlock + i, { seq: h.seq, segment, offset: data ? offset + HEADER_BYTES + i * this.unit : 0 });
        if (data && countCopies) this.stats.copyForwardBytes += h.blockCount * bs;
        return;
      }
      case RecordType.EVENT: {
        const e = decodeEventPayload(payload!, { segment, offset });
        this.index.noteTime(h.timeMs, h.seq);
        this.events.add({ id: e.eventId, seq: h.seq, timeMs: h.timeMs, label: e.label, kind: e.kind, changedBlocks: this.changed });
        this.changed = 0;
        this.eventId = Math.max(this.eventId, e.eventId + 1);
        break;
      }
      case RecordType.RESYNC_BEGIN: {
        const r = decodeResyncPayload(payload, { segment, offset });
        this.index.noteTime(h.timeMs, h.seq);
        this.events.windows.begin({ id: r.windowId, reason: r.reason ?? 'resync', beginSeq: h.seq, beginMs: h.timeMs, lostMs: r.lostMs });
        break;
      }
      case RecordType.RESYNC_END: {
        const r = decodeResyncPayload(payload, { segment, offset });
        this.index.noteTime(h.timeMs, h.seq);
        this.events.windows.end(r.windowId, h.seq, h.timeMs, r.bytesCopied);
        break;
      }
      case RecordType.LOST: {
        const r = decodeLostPayload(payload, { segment, offset });
        this.index.noteTime(h.timeMs, h.seq);
        // Replay below a checkpoint meets a span the manifest already holds, and recover's
        // record meets the span it put in the manifest first: the record's values stand.
        const span = { seq: h.seq, fromMs: r.fromMs, toMs: h.timeMs, lastSeq: r.lastSeq };
        const at = this.events.lost.findIndex((s) => s.seq === h.seq);
        if (at >= 0) this.events.lost[at] = span;
        else this.events.lost.push(span);
        break;
      }
      default:
        return;
    }
    this.seq = Math.max(this.seq, h.seq + 1);
    this.timeMs = Math.max(this.timeMs, h.timeMs);
  }
}
