import { ChronoError } from '../errors';
import { encodeSegmentHeader } from '../format/segment-header';
import { SEGMENT_HEADER, SegmentFlags, parseSegmentFileName, segmentFileName } from '../format/constants';
import { unpackUnits } from '../format/crc';
import { DEFAULTS } from '../options';
import { FileHandle, FileSystem } from '../storage/file-system';
import { ByteSource } from './segment-scanner';
import { BufferPool } from './buffer-pool';
import { SegmentSummaries } from './segment-summary';
import { ScanChunks } from './scan-chunks';
import { SegmentWriter, SegmentWriterState } from './segment-writer';

/** tryReadUnitsInto: the bytes are not in the OS cache yet. */
export const NOT_CACHED = -2;

export interface SegmentSetOptions {
  volumeId: Buffer;
  segmentSizeBytes: number;
  writeBufferBytes: number;
}

/**
 * The segments in primary storage: the sealed ones (oldest first) and the current one. Knows
 * nothing of blocks; the volume decides what goes where.
 */
export class SegmentSet {
  /** Sealed segments still in primary, oldest first (active ones and any awaiting archive). */
  readonly sealed: number[] = [];
  private readonly sealedSet = new Set<number>();
  current!: SegmentWriter;
  /** The current segment's firstSeq (its header's): seqs from here on are in no sealed segment. */
  currentFirstSeq = 0;
  private readonly readers = new Map<number, FileHandle>();
  /** Sealed segments whose fsync is still running: read through their writer until it lands. */
  private readonly sealing = new Map<number, { writer: SegmentWriter; durable: Promise<void> }>();
  /** A sealed segment that failed to become durable poisons the set. */
  private failure?: unknown;

  /** Shared by every segment this set writes, so a new segment starts with warm buffers. */
  private readonly buffers: BufferPool;
  /** What each segment written here holds, so turnover need not read its headers back (segment-summary.ts). */
  readonly summaries = new SegmentSummaries(DEFAULTS.segmentSummaryBytes);
  /** Scans' read-ahead, held in memory of our own (see ScanChunks). */
  private readonly scanChunks = new ScanChunks(DEFAULTS.scanChunkBytes, Math.floor(DEFAULTS.scanReadAheadBufferBytes / DEFAULTS.scanChunkBytes));

  constructor(private readonly fs: FileSystem, private readonly dir: string, private readonly opts: SegmentSetOptions) {
    this.buffers = new BufferPool(opts.writeBufferBytes);
  }

  static listIds(fs: FileSystem, dir: string): number[] {
    return fs.list(dir).map(parseSegmentFileName).filter((id): id is number => id !== undefined).sort((a, b) => a - b);
  }

  pathOf(id: number): string {
    return `${this.dir}/${segmentFileName(id)}`;
  }

  /** Is this segment in primary storage? Asked per block on the read path: a set, not a scan. */
  has(id: number): boolean {
    return id === this.current?.id || this.sealedSet.has(id);
  }

  get count(): number {
    return this.sealed.length + (this.current ? 1 : 0);
  }

  /** Registers a sealed segment found on disk (replay) or just sealed. */
  addSealed(id: number): void {
    this.sealed.push(id);
    this.sealedSet.add(id);
  }

  /** Creates a new current segment file; its header and directory entry are durable by its first sync. */
  startCurrent(id: number, firstSeq: number): void {
    const h = this.fs.open(this.pathOf(id), 'createNewDirect');
    const header = encodeSegmentHeader({ flags: SegmentFlags.syncPoints, volumeId: this.opts.volumeId, segmentId: id, firstSeq, createdMs: Date.now() });
    this.current = SegmentWriter.start(h, header, id, firstSeq, this.opts.segmentSizeBytes, this.buffers, this.fs.syncDirAsync(this.dir));
    this.currentFirstSeq = firstSeq;
    this.summaries.start(id);
    this.current.onAppend = (offset, r) => this.summaries.note(id, offset, r);
  }

  resumeCurrent(state: SegmentWriterState): void {
    const h = this.fs.open(this.pathOf(state.id), 'readWrite');
    h.truncate(state.end); // cut a torn tail
    h.sync();
    const header = Buffer.alloc(SEGMENT_HEADER.lengthBytes);
    h.read(header, 0, header.length, 0);
    this.currentFirstSeq = Number(header.readBigUInt64LE(SEGMENT_HEADER.off.firstSeq));
    this.current = new SegmentWriter(h, this.opts.segmentSizeBytes, this.buffers, state);
  }

  /**
   * Seals the current segment; it joins the sealed list at once and becomes durable in the
   * background (write and fdatasync on the threadpool). Errors surface at the next syncAll().
   */
  sealCurrent(): void {
    const writer = this.current;
    writer.seal();
    const id = writer.id;
    this.summaries.seal(id, writer.snapshot.recordCount);
    // Leave the map before the handle closes: from then on reads go to a plain read handle.
    const durable = writer.sync().then(() => {
      this.sealing.delete(id);
      return writer.close();
    }, (err) => {
      this.sealing.delete(id);
      this.summaries.drop(id); // not on disk as summarised: never copied forward from
      this.failure ??= err; // reported by every later syncAll: that segment may not be on disk
      throw err;
    });
    durable.catch(() => undefined); // observed by syncAll / durableThrough
    this.sealing.set(id, { writer, durable });
    this.addSealed(id);
  }

  /** A sealed segment is on disk whole (its SEAL fdatasynced, its file closed and cut to size) when this resolves. */
  async whenSealedDurable(id: number): Promise<void> {
    if (!this.sealedSet.has(id)) throw new ChronoError('BAD_ARGUMENT', `segment ${id} is not a sealed segment in primary`);
    await this.sealing.get(id)?.durable;
    if (this.failure) throw this.failure;
  }

  /** Everything appended so far, in every segment, is on disk when this resolves. */
  async syncAll(): Promise<void> {
    await Promise.all([...this.sealing.values()].map((s) => s.durable));
    if (this.failure) throw this.failure;
    await this.current.sync({ syncPoint: true });
  }

  /**
   * Everything appended so far, in every segment, is in the kernel (written, not yet synced) when
   * this resolves: it survives the process, not a power cut. A segment being sealed is waited for
   * until its last write-out has returned, not for its fdatasync: that is a flush's business
   * (syncAll). Waiting for it put a journal commit into the reply of one write in 32 (a 2 MiB
   * qemu-img request), and a client that keeps one write in flight waits for each of them.
   */
  async handOff(): Promise<void> {
    await Promise.all([...[...this.sealing.values()].map((s) => s.writer.handOff()), this.current.handOff()]);
    if (this.failure) throw this.failure;
  }

  /** Everything up to `offset` of segment `segment` (and before) is on disk when this resolves. */
  async durableThrough(pos: { segment: number; offset: number }): Promise<void> {
    await Promise.all([...this.sealing.entries()].filter(([id]) => id <= pos.segment).map(([, s]) => s.durable));
    if (this.failure) throw this.failure;
    // `pos.segment` was current when asked. Still current: synced here. Sealed while the wait
    // above ran: its own seal's fdatasync makes it durable (awaited; gone from the map once done).
    if (this.current.id === pos.segment) await this.current.sync();
    else await this.sealing.get(pos.segment)?.durable;
    if (this.failure) throw this.failure;
  }

  source(id: number): ByteSource {
    const w = id === this.current?.id ? this.current : this.sealing.get(id)?.writer;
    if (w) return { size: w.end, read: (p, l) => this.readExact(id, p, l) };
    const h = this.reader(id);
    return { size: h.size(), read: (p, l) => this.readExact(id, p, l) };
  }

  readInto(id: number, out: Buffer, outOffset: number, length: number, position: number): void {
    const writer = id === this.current?.id ? this.current : this.sealing.get(id)?.writer;
    const n = writer ? writer.read(out, outOffset, length, position) : this.reader(id).read(out, outOffset, length, position);
    if (n !== length) throw new ChronoError('CORRUPT_LOG', `segment ${id} is shorter than expected at ${position}`, { segment: id, offset: position });
  }

  /**
   * Reads `count` block units at `position` (through `scratch`) and unpacks their data into out,
   * checking each CRC. Returns -1, or the index of the first unit that fails.
   */
  readUnitsInto(id: number, position: number, blockSizeBytes: number, count: number, out: Buffer, outOffset: number, scratch: Buffer): number {
    this.readInto(id, scratch, 0, count * (blockSizeBytes + 4), position);
    return unpackUnits(scratch, 0, blockSizeBytes, count, out, outOffset);
  }

  /**
   * readUnitsInto without waiting for the disk: NOT_CACHED when a sealed segment's bytes are not
   * all in the OS cache yet (out then holds nothing useful; finish with readUnitsLater).
   * Blocking in pread there stalled every request the event loop serves, for as long as the
   * disk took: in a cold scan 26 µs a request on average, up to 24 ms.
   */
  tryReadUnitsInto(id: number, position: number, blockSizeBytes: number, count: number, out: Buffer, outOffset: number, scratch: Buffer): number {
    const h = id === this.current?.id || this.sealing.has(id) ? undefined : this.reader(id);
    if (!h?.readNoWait) return this.readUnitsInto(id, position, blockSizeBytes, count, out, outOffset, scratch);
    const length = count * (blockSizeBytes + 4);
    const held = this.scanChunks.view(id, position, length, scratch);
    if (held) return unpackUnits(held.buf, held.offset, blockSizeBytes, count, out, outOffset);
    if (this.scanChunks.loading(id, position, length)) return NOT_CACHED;
    if (h.readNoWait(scratch, 0, length, position) < length) return NOT_CACHED;
    return unpackUnits(scratch, 0, blockSizeBytes, count, out, outOffset);
  }

  /**
   * readUnitsInto on the threadpool, for what tryReadUnitsInto found not cached. Called in the
   * same tick as the lookup, so the segment is still in primary; its descriptor then stays open
   * until the read ends, even if the segment is recycled meanwhile (its bytes never change).
   */
  async readUnitsLater(id: number, position: number, blockSizeBytes: number, count: number, out: Buffer, outOffset: number): Promise<number> {
    const length = count * (blockSizeBytes + 4);
    const buf = Buffer.allocUnsafe(length);
    // A scan's chunk on its way: wait for it rather than queue a second read of the same bytes.
    const h = this.reader(id); // in the lookup's tick: the segment is in primary
    const landing = this.scanChunks.loading(id, position, length);
    let read: Promise<number>;
    if (landing) {
      const release = h.hold?.() ?? (() => undefined); // a recycle meanwhile must not close it
      try {
        await landing;
        const held = this.scanChunks.view(id, position, length, buf);
        if (held) return unpackUnits(held.buf, held.offset, blockSizeBytes, count, out, outOffset);
        read = h.readAsync(buf, 0, length, position);
      } finally {
        release();
      }
    } else read = h.readAsync(buf, 0, length, position);
    const n = await read;
    if (n !== length) throw new ChronoError('CORRUPT_LOG', `segment ${id} is shorter than expected at ${position}`, { segment: id, offset: position });
    return unpackUnits(buf, 0, blockSizeBytes, count, out, outOffset);
  }

  /** Starts reading a range of a sealed segment ahead of a scan (advisory; never waits). */
  prefetch(id: number, position: number, length: number): void {
    if (id === this.current?.id || this.sealing.has(id) || !this.sealedSet.has(id)) return;
    const h = this.reader(id);
    if (!this.scanChunks.load(id, h.directReads, position, length)) h.prefetch?.(position, length);
  }

  readExact(id: number, position: number, length: number): Buffer {
    const b = Buffer.allocUnsafe(length);
    this.readInto(id, b, 0, length, position);
    return b;
  }

  /**
   * A whole sealed segment, read on the threadpool and directly (written with O_DIRECT, it is not
   * in the OS cache, and it is read once, to be archived).
   */
  async readWholeAsync(id: number): Promise<Buffer> {
    const size = this.source(id).size;
    const buf = await this.fs.readFileAsync(this.pathOf(id), { direct: true });
    if (buf.length !== size) throw new ChronoError('CORRUPT_LOG', `segment ${id} is shorter than expected: ${buf.length} of ${size} bytes`, { segment: id });
    return buf;
  }

  /** Deletes a sealed segment's primary copy (after it is archived). */
  recycle(id: number): void {
    const i = this.sealed.indexOf(id);
    if (i < 0 || this.sealing.has(id)) throw new ChronoError('BAD_ARGUMENT', `segment ${id} is not a durable sealed segment in primary`);
    this.readers.get(id)?.close();
    this.readers.delete(id);
    this.scanChunks.drop(id);
    this.summaries.drop(id);
    this.fs.remove(this.pathOf(id));
    this.fs.syncDir(this.dir);
    this.sealed.splice(i, 1);
    this.sealedSet.delete(id);
  }

  async close(): Promise<void> {
    this.scanChunks.close();
    await Promise.allSettled([...this.sealing.values()].map((s) => s.durable));
    for (const h of this.readers.values()) h.close();
    this.readers.clear();
    await this.current?.close();
  }

  private reader(id: number): FileHandle {
    let h = this.readers.get(id);
    if (!h) {
      h = this.fs.open(this.pathOf(id), 'read');
      this.readers.set(id, h);
    }
    return h;
  }
}
