import { ChronoError } from '../errors';
import { RecordType, SEAL_PAYLOAD, SEGMENT_HEADER, SYNC_PAYLOAD } from '../format/constants';
import { crc32c, packUnits } from '../format/crc';
import { HEADER_BYTES, RecordHeader, encodeSealPayload, encodeSyncPayload, unitBytes, writeRecordHeader } from '../format/record';
import { FileHandle } from '../storage/file-system';
import { BufferPool } from './buffer-pool';

/** Room always kept for the SEAL record, so a full segment can still be sealed. */
export const SEAL_RESERVE_BYTES = HEADER_BYTES + SEAL_PAYLOAD.lengthBytes;

export interface SegmentWriterState {
  id: number;
  end: number;
  recordCount: number;
  bodyCrc: number;
  lastSeq: number;
  /** The segment's header has SegmentFlags.syncPoints: its syncs append SYNC records. */
  syncPoints: boolean;
}

interface InFlight {
  start: number;
  len: number;
  /** A direct write zero-padded past its data to a page boundary (a sync's). */
  padded?: boolean;
  buf: Buffer;
  done: Promise<void>;
}

/**
 * Appends records to the current segment. Appends fill a buffer in memory; a full buffer is
 * written on the threadpool while the next one fills, so CRCs and copies overlap the disk.
 * Nothing is durable before `sync()` resolves. After an I/O error the writer refuses all further
 * use: what reached the disk is unknown, and guessing could acknowledge lost data.
 */
export class SegmentWriter {
  private buf: Buffer;
  private bufStart: number;
  private bufLen = 0;
  private readonly inFlight: InFlight[] = [];
  private failure?: ChronoError;
  private sealed = false;
  /**
   * With direct writes, whole pages only: the buffer starts on a page boundary, a write-out is
   * padded to whole pages, and its partial last page stays at the front of the next buffer, to be
   * written again with what follows. Writes are in order, so the later copy always wins.
   */
  private readonly align: number;
  /** Hears of every record appended, at its offset (the set's segment summary). */
  onAppend?: (offset: number, h: RecordHeader) => void;
  /** Bytes at the front of the buffer that are on their way to the file already (that page). */
  private written = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly segmentSizeBytes: number,
    private readonly buffers: BufferPool,
    private state: SegmentWriterState,
  ) {
    this.align = handle.directWrites?.alignBytes ?? 0;
    this.buf = this.take();
    this.bufStart = state.end;
  }

  private alloc(sizeBytes: number): Buffer {
    return this.handle.directWrites ? this.handle.directWrites.alloc(sizeBytes) : Buffer.allocUnsafe(sizeBytes);
  }

  private take(): Buffer {
    return this.buffers.take(this.align, (n) => this.alloc(n));
  }

  /**
   * Starts a new segment file. The header goes out with the first records, and `created` (the
   * directory entry's fsync) is awaited by every sync(): nothing is durable before the file is.
   * Neither waits here, so starting a segment never stalls the event loop on the disk.
   */
  static start(handle: FileHandle, header: Buffer, id: number, firstSeq: number, segmentSizeBytes: number, buffers: BufferPool, created: Promise<void>): SegmentWriter {
    const w = new SegmentWriter(handle, segmentSizeBytes, buffers, { id, end: 0, recordCount: 0, bodyCrc: 0, lastSeq: firstSeq - 1, syncPoints: true });
    header.copy(w.buf, 0);
    w.bufLen = header.length;
    w.state.end = SEGMENT_HEADER.lengthBytes;
    w.created = w.guard(created);
    w.created.catch(() => undefined); // observed by sync()
    return w;
  }
  private created?: Promise<void>;

  get id(): number {
    return this.state.id;
  }
  get end(): number {
    return this.state.end;
  }
  get snapshot(): SegmentWriterState {
    return { ...this.state };
  }
  /** Bytes appended but not yet handed to the OS. */
  get pendingBytes(): number {
    return this.inFlight.reduce((n, f) => n + f.len, 0) + this.bufLen;
  }

  /** Bytes still free for records before the segment must be sealed. */
  remaining(): number {
    return this.segmentSizeBytes - this.state.end - SEAL_RESERVE_BYTES;
  }

  /**
   * Appends a record whose payload `fill` writes at buf[at..at+payloadLength). Returns the
   * record's offset in the segment.
   */
  append(h: RecordHeader, fill?: (buf: Buffer, at: number) => void): number {
    this.usable();
    if (this.sealed) throw new ChronoError('CLOSED', `segment ${this.state.id} is sealed`);
    const len = HEADER_BYTES + h.payloadLength;
    if (len > this.remaining() + (h.type === RecordType.SEAL ? SEAL_RESERVE_BYTES : 0)) {
      throw new ChronoError('BAD_ARGUMENT', `record of ${len} bytes does not fit in segment ${this.state.id}`);
    }
    if (this.bufLen + len > this.buf.length) this.startFlush(len, false);
    const at = this.bufLen;
    fill?.(this.buf, at + HEADER_BYTES);
    writeRecordHeader(this.buf, at, h);
    // Block data has its own CRCs: the seal chains headers only, so data is checksummed once.
    if (h.type !== RecordType.SEAL) this.state.bodyCrc = crc32c(this.buf.subarray(at, at + HEADER_BYTES), this.state.bodyCrc);
    this.bufLen += len;
    const offset = this.state.end;
    this.state.end += len;
    this.state.recordCount++;
    this.onAppend?.(offset, h);
    if (h.type !== RecordType.SEAL) this.state.lastSeq = Math.max(this.state.lastSeq, h.seq);
    return offset;
  }

  /** Appends block data as per-block (crc32c, data) units. */
  appendBlocks(h: Omit<RecordHeader, 'payloadLength'>, data: Buffer, dataOffset: number, blockSizeBytes: number): number {
    const unit = unitBytes(blockSizeBytes);
    return this.append({ ...h, payloadLength: h.blockCount * unit }, (buf, at) => packUnits(data, dataOffset, blockSizeBytes, h.blockCount, buf, at));
  }

  /** Reads bytes appended so far, wherever they are: the file, a buffer in flight, or the one filling. */
  read(out: Buffer, outOffset: number, length: number, position: number): number {
    this.usable();
    const end = Math.min(position + length, this.state.end);
    let at = position;
    while (at < end) {
      const o = outOffset + (at - position);
      if (at >= this.bufStart) {
        const n = end - at;
        this.buf.copy(out, o, at - this.bufStart, at - this.bufStart + n);
        at += n;
        continue;
      }
      const f = this.inFlight.find((x) => at >= x.start && at < x.start + x.len);
      if (f) {
        const n = Math.min(end, f.start + f.len) - at;
        f.buf.copy(out, o, at - f.start, at - f.start + n);
        at += n;
        continue;
      }
      // Landed bytes: in the file up to the next write-out still in flight after them (direct
      // write-outs may land out of order, so that is not always the first one) or the buffer.
      let next = this.bufStart;
      for (const x of this.inFlight) if (x.start > at && x.start < next) next = x.start;
      const n = Math.min(end, next) - at;
      const got = this.handle.read(out, o, n, at);
      at += got;
      if (got < n) break;
    }
    return at - position;
  }

  /**
   * Resolves once every byte appended so far is in the kernel: written (page cache or device),
   * not yet fdatasync'd. That survives our process being killed, not a power cut. Calls in one
   * turn of the event loop share one write: the filling buffer goes out (zero-padded to a page,
   * as for a sync) in the check phase, after every request that arrived in that turn is appended.
   */
  handOff(): Promise<void> {
    if (this.failure && this.failure.code !== 'CLOSED') return Promise.reject(this.failure);
    if (this.bufLen <= this.written) return this.landed();
    return (this.handOffPending ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.handOffPending = undefined;
      if (this.failure && this.failure.code !== 'CLOSED') throw this.failure;
      // A seal's sync (or close) may have sent everything meanwhile; then only wait for it.
      if (this.bufLen > this.written && !this.failure) this.startFlush(0, true);
      return this.landed();
    }));
  }
  private handOffPending?: Promise<void>;

  /** Every write-out started so far has returned. */
  private async landed(): Promise<void> {
    if (this.inFlight.length) await Promise.all(this.inFlight.map((f) => f.done));
  }

  /** Waits until at most `maxBytes` are still queued for the OS. */
  async backpressure(maxBytes: number): Promise<void> {
    while (this.inFlight.length && this.pendingBytes > maxBytes) await this.inFlight[0].done;
    this.usable();
  }

  /**
   * Every byte appended so far is on disk when this resolves. With `syncPoint`, a SYNC record
   * naming the position this sync made durable is then appended and made durable by a second
   * fdatasync, before this resolves (docs/DESIGN.md, "Acknowledged bytes are never cut", rule 4):
   * on disk, a SYNC record proves that every byte before the position it names was durable
   * before it was even written, so replay may cut damage past it as a torn tail (a power loss
   * can persist unsynced buffers out of order) and must refuse damage before it; and once the
   * sync is acknowledged the record is on disk. Appended before the first fdatasync, in the same
   * write-out, a power cut during that fdatasync could persist the SYNC record's page and lose an
   * earlier one: a torn, unacknowledged tail that replay then took for acknowledged damage. Only
   * the foreground asks for one (flush, sync, turnover, all serialized with appends, each ending
   * with this sync), so it cannot slip in between a space check and the append it made room for.
   */
  async sync(opts: { syncPoint?: boolean } = {}): Promise<void> {
    this.usable();
    const through = this.state.end;
    await this.syncAppended();
    if (opts.syncPoint && this.appendSyncPoint(through)) await this.syncAppended();
  }

  /** Writes out everything appended and fdatasyncs it. */
  private async syncAppended(): Promise<void> {
    this.startFlush(0, true);
    await this.created;
    await Promise.all(this.inFlight.map((f) => f.done));
    await this.guard(this.handle.syncAsync());
  }

  /** The segment's end after the last SYNC record appended (0: none yet). */
  private lastSyncPoint = 0;
  /** Appends a SYNC record naming `through`, which must already be durable; false if none was needed or fits. */
  private appendSyncPoint(through: number): boolean {
    const bytes = HEADER_BYTES + SYNC_PAYLOAD.lengthBytes;
    // Nothing new since the last one, or no room left (a full segment is sealed next anyway), or
    // the writer stopped (closed or failed) meanwhile.
    if (!this.state.syncPoints || this.sealed || this.failure || through <= this.lastSyncPoint || this.remaining() < bytes) return false;
    const payload = encodeSyncPayload(through);
    this.append(
      { type: RecordType.SYNC, blockCount: 0, seq: this.state.lastSeq, timeMs: 0, firstBlock: 0, payloadLength: payload.length, originSegment: 0, originOffset: 0 },
      (buf, at) => payload.copy(buf, at),
    );
    this.lastSyncPoint = this.state.end;
    return true;
  }

  /** Appends the SEAL record; `sync()` then makes the segment durable. No appends after this. */
  seal(): void {
    const payload = encodeSealPayload({ recordCount: this.state.recordCount, lastSeq: this.state.lastSeq, bodyCrc: this.state.bodyCrc });
    this.append(
      { type: RecordType.SEAL, blockCount: 0, seq: this.state.lastSeq, timeMs: 0, firstBlock: 0, payloadLength: payload.length, originSegment: 0, originOffset: 0 },
      (buf, at) => payload.copy(buf, at),
    );
    this.sealed = true;
  }

  /** Closes the file once everything in flight has landed. */
  async close(): Promise<void> {
    if (!this.failure) this.startFlush(0, true);
    await Promise.allSettled(this.inFlight.map((f) => f.done));
    // Direct writes leave zeros to the page boundary; cut them (replay would cut them anyway,
    // as a torn tail, after a crash).
    try {
      if (this.align && !this.failure && this.handle.size() > this.state.end) {
        this.handle.truncate(this.state.end);
        // A sealed segment is archived by linking it (ordering rule 7): its exact length must be
        // durable too, or after a power cut the object could end in padding instead of its SEAL.
        if (this.sealed) await this.guard(this.handle.syncAsync());
      }
    } finally {
      this.handle.close();
      this.failure ??= new ChronoError('CLOSED', `segment ${this.state.id} is closed`);
      // No read can reach the buffer now (every call checks `failure`), so the next segment may have it.
      this.buffers.give(this.align, this.buf);
    }
  }

  /**
   * Hands the filling buffer to the OS (threadpool) and starts a fresh one with room for
   * minBytes more. `all`: every byte, for a sync or close; otherwise, with direct writes, only
   * whole pages go and the partial last page stays for the next buffer.
   */
  private startFlush(minBytes: number, all: boolean): void {
    const a = this.align;
    // Direct writes move whole pages: up to the last page boundary, or zero-padded past it for a
    // sync (that partial page then stays at the front of the next buffer and is written again).
    const dataLen = a && !all ? Math.floor(this.bufLen / a) * a : this.bufLen;
    if (dataLen > this.written) {
      const writeLen = a ? Math.ceil(dataLen / a) * a : dataLen;
      const padded = writeLen > dataLen;
      const keep = a ? this.bufLen % a : 0;
      if (padded) this.buf.fill(0, dataLen, writeLen);
      const f: InFlight = { start: this.bufStart, len: dataLen, buf: this.buf, padded, done: Promise.resolve() };
      // Buffered writes go one at a time, in order: parallel page-cache copies only fight the
      // event loop (and the kernel's own copies) for the same cores, and in-order writes keep the
      // unsynced tail a prefix after a process crash. Direct writes are DMA and may overlap,
      // except right after a padded one, whose last page they write again: that must land last.
      const last = this.inFlight[this.inFlight.length - 1];
      const previous = last && (!a || last.padded) ? last.done.catch(() => undefined) : undefined;
      f.done = this.guard((previous ?? Promise.resolve()).then(() => this.handle.writeAsync(f.buf, 0, writeLen, f.start))).then(() => {
        if (!a) this.handle.startWriteback?.(f.start, f.len);
        this.inFlight.splice(this.inFlight.indexOf(f), 1);
        this.buffers.give(this.align, f.buf);
      });
      f.done.catch(() => undefined); // observed by sync/backpressure; never an unhandled rejection
      this.inFlight.push(f);
      const next = this.take();
      this.buf.copy(next, 0, this.bufLen - keep, this.bufLen);
      this.bufStart += this.bufLen - keep;
      this.bufLen = keep;
      this.written = padded ? keep : 0;
      this.buf = next;
    }
    if (this.bufLen + minBytes > this.buf.length) {
      const bigger = this.alloc(this.bufLen + minBytes);
      this.buf.copy(bigger, 0, 0, this.bufLen);
      this.buffers.give(this.align, this.buf);
      this.buf = bigger;
    }
  }

  private usable(): void {
    if (this.failure) throw this.failure;
  }

  private async guard(op: Promise<void>): Promise<void> {
    try {
      await op;
    } catch (err) {
      this.failure = new ChronoError('WRITER_FAILED', `segment ${this.state.id}: an earlier I/O error stopped this writer; reopen the volume`, {}, err);
      throw err;
    }
  }
}
