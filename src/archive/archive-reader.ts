import { LRUCache } from 'lru-cache';
import { ARCHIVE_TRAILER, ArchiveCacheKind, SEGMENT_HEADER } from '../format/constants';
import { ChronoError, isChronoError } from '../errors';
import { DEFAULTS } from '../options';
import { BackingStore } from './backing-store';
import { lastAtOrBelow } from '../util/sorted-search';
import { OffsetTable, identityTable, parseOffsetTable, toArchiveOffset } from './archive-object';
import { OBJECT_TAIL_BYTES, decodeObjectEnd, readObjectEnd } from './object-end';
import { ArchiveDiskCache } from './archive-disk-cache';
import { ArchiveCatalog } from './archive-catalog';
import { ExpectedRecord, readChecked } from './record-check';
import { ArchiveTableFiles } from './archive-table-file';

/** Archived objects are fetched in aligned chunks of this size: a scan costs one ranged read per chunk. */
const CHUNK_BYTES = 1024 * 1024;
/**
 * A scan's own read-ahead within an object, and the block reader's look-ahead into the next
 * objects (two objects a look, ARCHIVE_AHEAD_CHUNKS each, 8 MiB ahead): at twice the chunks in
 * flight, chunks sent ahead into the farther of several small objects were evicted before the
 * scan reached them, and fetched again.
 */
const CHUNKS_CACHED = 4 * DEFAULTS.archiveReadsInFlight;
/** The most a scan may skip between reads (record headers) and still count as one. */
const SCAN_GAP_BYTES = 64 * 1024;
/** A tail read this long holds the trailer and the offset table of a segment of up to ~8,000 records. */
const TAIL_BYTES = 64 * 1024;

/**
 * Ranged reads of archived segments in primary coordinates: the index keeps locations as they
 * were in the primary log, and each object's offset table translates them. Tables and recently
 * fetched chunks are cached (chunks hold verified-on-use data: every block is still checked
 * against its CRC by the block reader). With a disk cache (--archive-cache), tables and chunks are
 * also kept on disk, across restarts: a cached one costs no round trip. With local tables (the
 * volume's own, written at archiving: archive-table-file.ts), a cold read of a built object is
 * one ranged read, header and data: a read through a local table is always checked against the
 * record it lands in, and a table that fails that is dropped and fetched from the object.
 */
/** One object of a segment, as the catalog named it when a read began (ArchiveReader.refOf). */
interface ObjectRef {
  segmentId: number;
  generation: number;
  key: string;
  /** `<id>:<generation>`: what the in-memory tables and chunks are keyed by. */
  cacheKey: string;
  /** The on-disk cache, for an original object (generation 0, not in the catalog) only. */
  disk?: ArchiveDiskCache;
}

export class ArchiveReader {
  /** By `<id>:<generation>`: a compacted rewrite is another object, with another table. */
  private readonly tables: LRUCache<string, OffsetTable>;
  private readonly chunks = new LRUCache<string, Promise<Buffer>>({ max: CHUNKS_CACHED });
  /** Per segment, where the last read ended (archive offset): a read starting there is a scan. */
  private readonly lastEnd = new LRUCache<number, number>({ max: 64 });
  /** Tables that came from a local table file: trusted only by reads that check their record. */
  private readonly fromLocal = new WeakSet<OffsetTable>();
  /** Local tables a read found wrong: every read through one (concurrent ones too) is done again. */
  private readonly distrusted = new WeakSet<OffsetTable>();

  constructor(private readonly store: BackingStore, cacheSegments: number, readonly disk?: ArchiveDiskCache, readonly catalog = new ArchiveCatalog(), readonly local?: ArchiveTableFiles) {
    this.tables = new LRUCache({ max: cacheSegments });
  }

  /**
   * The object the catalog names for a segment now. A read takes it once, before its first
   * await, and every step of the read (table, ranged reads, chunks, caches) uses it: a prune that
   * replaces the object meanwhile must never pair one object's table with another's bytes. The
   * on-disk cache holds original objects only (it is keyed by segment id): a rewritten one is
   * read past it.
   */
  private refOf(segmentId: number): ObjectRef {
    const entry = this.catalog.entry(segmentId);
    const generation = entry?.generation ?? 0;
    return { segmentId, generation, key: this.catalog.keyOf(segmentId), cacheKey: `${segmentId}:${generation}`, disk: entry ? undefined : this.disk };
  }

  /** `checked`: the caller checks the record its read lands in, so a local table will do. */
  table(segmentId: number, checked = false): Promise<OffsetTable> {
    return this.tableOf(this.refOf(segmentId), checked);
  }

  private async tableOf(ref: ObjectRef, checked: boolean): Promise<OffsetTable> {
    const segmentId = ref.segmentId;
    if (this.catalog.isDeleted(segmentId)) throw prunedSegment(segmentId);
    const ck = ref.cacheKey;
    const cached = this.tables.get(ck);
    if (cached && (checked || !this.fromLocal.has(cached))) return cached;
    if (checked && this.local) {
      const local = await this.local.load(segmentId, ref.generation);
      if (local) {
        this.fromLocal.add(local);
        this.tables.set(ck, local);
        return local;
      }
    }
    const disk = ref.disk;
    const onDisk = await disk?.get(ArchiveCacheKind.TABLE, segmentId, 0);
    const fromDisk = onDisk && decodeTable(onDisk);
    if (fromDisk) {
      this.tables.set(ck, fromDisk);
      return fromDisk;
    }
    if (onDisk) this.disk?.discard(ArchiveCacheKind.TABLE, segmentId, 0);
    const table = await this.fetchTable(ref);
    this.tables.set(ck, table);
    void disk?.put(ArchiveCacheKind.TABLE, segmentId, 0, encodeTable(table));
    return table;
  }

  private async fetchTable(ref: ObjectRef): Promise<OffsetTable> {
    const { segmentId, key } = ref;
    const ctx = { segment: segmentId, archive: true };
    // One round trip where the store can read a tail (S3: a suffix range): the object's end and its table.
    const tail = this.store.getTail ? await this.store.getTail(key, TAIL_BYTES).catch((err) => {
      if (isChronoError(err, 'ARCHIVE_MISSING')) throw missingSegment(this.store, segmentId);
      throw err;
    }) : undefined;
    const size = tail?.sizeBytes ?? await this.store.size(key);
    if (size === undefined) throw missingSegment(this.store, segmentId);
    const tailStart = tail ? size - tail.data.length : size;
    const endAt = size - Math.min(size, OBJECT_TAIL_BYTES);
    const trailer = tail && endAt >= tailStart ? decodeObjectEnd(tail.data.subarray(endAt - tailStart), size, ctx) : await readObjectEnd(this.store, key, size, ctx);
    if (trailer.linked) return identityTable(trailer.dataEnd);
    const trailerAt = size - ARCHIVE_TRAILER.lengthBytes;
    const tableBytes = trailer.entryCount * ARCHIVE_TRAILER.entryBytes;
    if (trailer.tableOffset + tableBytes !== trailerAt) throw new ChronoError('BAD_LENGTH', `archived segment ${segmentId}: its offset table does not end at its trailer`, ctx);
    const raw = tail && trailer.tableOffset >= tailStart
      ? tail.data.subarray(trailer.tableOffset - tailStart, trailer.tableOffset - tailStart + tableBytes)
      : await this.store.getRange(key, trailer.tableOffset, tableBytes);
    return parseOffsetTable(raw, trailer.tableOffset, trailer.entryCount, segmentId);
  }

  /**
   * Reads `length` bytes at a primary offset of an archived segment. With `expect` (which
   * version the index says is there), a built object's record is checked before its bytes are
   * served (record-check.ts); a failed check drops what the caches hold of the segment.
   */
  async read(segmentId: number, primaryOffset: number, length: number, expect?: ExpectedRecord): Promise<Buffer> {
    const generation = this.catalog.entry(segmentId)?.generation ?? 0;
    try {
      return await this.readOnce(segmentId, primaryOffset, length, expect);
    } catch (err) {
      // A prune replaced the object meanwhile (and deleted the one this read began on): once more, with the new one.
      if ((this.catalog.entry(segmentId)?.generation ?? 0) !== generation) return this.readOnce(segmentId, primaryOffset, length, expect);
      throw err;
    }
  }

  private async readOnce(segmentId: number, primaryOffset: number, length: number, expect?: ExpectedRecord): Promise<Buffer> {
    const ref = this.refOf(segmentId);
    const table = await this.tableOf(ref, expect !== undefined);
    const at = toArchiveOffset(table, primaryOffset);
    // Records lie back to back: the one holding `at` ends where the next begins. A read that runs
    // past it is at a record the object does not hold: never serve the neighbour's bytes.
    const i = lastAtOrBelow(table.primary, primaryOffset);
    const recordEnd = i >= 0 && i + 1 < table.archive.length ? table.archive[i + 1] : table.tableOffset;
    if (at === undefined || at + length > recordEnd) {
      if (this.distrust(ref, table, `it maps primary offset ${primaryOffset} to no record`)) return this.readOnce(segmentId, primaryOffset, length, expect);
      if (this.catalog.isCompacted(segmentId)) throw prunedSegment(segmentId, primaryOffset);
      throw new ChronoError('CORRUPT_LOG', `archived segment ${segmentId} has no record at primary offset ${primaryOffset}`, { segment: segmentId, offset: primaryOffset });
    }
    if (!expect || table.linked) return this.readAt(ref, table, at, length);
    return readChecked(table, segmentId, primaryOffset, length, expect, (from, n) => this.readAt(ref, table, from, n))
      .catch((err) => {
        // A local table that led a read astray (the wrong record, or past the object's end) is
        // stale or damaged: once more, with the object's own table. An outage is not its fault.
        if (!isChronoError(err, 'ARCHIVE_UNAVAILABLE') && this.distrust(ref, table, (err as Error).message)) return this.readOnce(segmentId, primaryOffset, length, expect);
        return this.discardAfter(ref, table, err);
      });
  }

  /** If `table` came from a local table file: it is dropped (from memory and disk, once) and true is returned. */
  private distrust(ref: ObjectRef, table: OffsetTable, why: string): boolean {
    if (!this.fromLocal.has(table) || !this.local) return false;
    if (this.distrusted.has(table)) return true;
    this.distrusted.add(table);
    if (this.tables.get(ref.cacheKey) === table) this.tables.delete(ref.cacheKey);
    // Chunks were cut at its idea of where the records end: fetched again with the right one.
    this.dropChunks(ref.segmentId);
    this.local.refuse(ref.segmentId, ref.generation, why);
    return true;
  }

  private dropChunks(segmentId: number): void {
    for (const key of [...this.chunks.keys()]) if (key.startsWith(`${segmentId}:`)) this.chunks.delete(key);
  }

  /** A record that failed its check: nothing cached of its segment (table, chunks, on disk too) is trusted again. */
  private async discardAfter(ref: ObjectRef, table: OffsetTable, err: unknown): Promise<never> {
    if (isChronoError(err, 'CORRUPT_LOG')) {
      if (this.tables.get(ref.cacheKey) === table) this.tables.delete(ref.cacheKey);
      this.dropChunks(ref.segmentId);
      await ref.disk?.discardSegment(ref.segmentId);
    }
    throw err;
  }

  /**
   * Starts fetching `chunks` chunks of a segment's object from a primary offset on: a scan of an
   * image is about to read there. The read-ahead of a scan runs within one object, so without
   * this it drained over the last chunks of each object, and the scan's first read in the next
   * was an isolated ranged read that started it over. (That first read finds its chunk here.)
   * Advisory: no read waits for it (the promise, which never rejects, is for tests), and a
   * failure is left for the read itself to meet.
   */
  prefetch(segmentId: number, primaryOffset: number, chunks: number): Promise<void> {
    const ahead = async () => {
      if (this.catalog.isDeleted(segmentId)) return;
      const ref = this.refOf(segmentId);
      // A local table will do: chunks are keyed by where the table says they end (see chunk()).
      const table = await this.tableOf(ref, true);
      const at = toArchiveOffset(table, primaryOffset);
      if (at === undefined) return;
      for (let k = 0, start = at - (at % CHUNK_BYTES); k < chunks && start < table.tableOffset; k++, start += CHUNK_BYTES) {
        void this.chunk(ref, start, Math.min(CHUNK_BYTES, table.tableOffset - start)).catch(() => undefined);
      }
    };
    return ahead().catch(() => undefined);
  }

  /** `length` bytes at an archive offset: one ranged read, or by cached chunks for a scan. */
  private async readAt(ref: ObjectRef, table: OffsetTable, at: number, length: number): Promise<Buffer> {
    const segmentId = ref.segmentId;
    // A scan skips the record headers between the blocks it reads: a read starting a little past
    // where the last one ended is still a scan (with `=== at`, 1 MiB reads never were).
    const lastEnd = this.lastEnd.get(segmentId);
    const sequential = lastEnd !== undefined && at >= lastEnd && at - lastEnd <= SCAN_GAP_BYTES;
    this.lastEnd.set(segmentId, at + length);
    // An isolated read fetches just its bytes (unless its chunk is cached, in memory or on disk);
    // a scan goes by chunks with the next ones fetched ahead.
    const first = at - (at % CHUNK_BYTES);
    if (!sequential && !this.chunks.has(`${ref.cacheKey}:${first}:${Math.min(CHUNK_BYTES, table.tableOffset - first)}`) && !ref.disk?.has(ArchiveCacheKind.CHUNK, segmentId, first)) {
      return this.store.getRange(ref.key, at, length);
    }
    const out = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const pos = at + done;
      const start = pos - (pos % CHUNK_BYTES);
      const chunkP = this.chunk(ref, start, Math.min(CHUNK_BYTES, table.tableOffset - start));
      // Scans: keep the next chunks in flight while this one is consumed (out of S3 each is a
      // round trip; one at a time, a scan ran at one chunk per round trip).
      for (let k = 1; sequential && k < DEFAULTS.archiveReadsInFlight; k++) {
        const next = start + k * CHUNK_BYTES;
        if (next >= table.tableOffset) break;
        void this.chunk(ref, next, Math.min(CHUNK_BYTES, table.tableOffset - next)).catch(() => undefined);
      }
      const chunk = await chunkP;
      const n = Math.min(length - done, start + chunk.length - pos);
      // A chunk shorter than the table says (never, unless the table lies): an error, not a loop.
      if (n <= 0) throw new ChronoError('CORRUPT_LOG', `archived segment ${segmentId}: the chunk at ${start} ends at ${start + chunk.length}, before archive offset ${pos}`, { segment: segmentId, offset: pos, archive: true });
      chunk.copy(out, done, pos - start, pos - start + n);
      done += n;
    }
    return out;
  }

  private chunk(ref: ObjectRef, start: number, length: number): Promise<Buffer> {
    // By length too: a chunk is the object's bytes, but where it ends comes from a table, and a
    // read through a stale local table (in flight beside the one that found it wrong) must not
    // leave a short chunk for reads through the right one.
    const key = `${ref.cacheKey}:${start}:${length}`;
    let p = this.chunks.get(key);
    if (!p) {
      p = this.fetchChunk(ref, start, length);
      p.catch(() => this.chunks.delete(key)); // a failed fetch is not remembered
      this.chunks.set(key, p);
    }
    return p;
  }

  private async fetchChunk(ref: ObjectRef, start: number, length: number): Promise<Buffer> {
    const cached = await ref.disk?.get(ArchiveCacheKind.CHUNK, ref.segmentId, start, length);
    if (cached) return cached;
    const data = await this.store.getRange(ref.key, start, length);
    void ref.disk?.put(ArchiveCacheKind.CHUNK, ref.segmentId, start, data);
    return data;
  }
}

/** An offset table as the disk cache keeps it: entryCount u32, 0 u32, tableOffset u64, then the entries. */
function encodeTable(t: OffsetTable): Buffer {
  const b = Buffer.alloc(16 + t.primary.length * ARCHIVE_TRAILER.entryBytes);
  b.writeUInt32LE(t.primary.length, 0);
  b.writeBigUInt64LE(BigInt(t.tableOffset), 8);
  for (let i = 0; i < t.primary.length; i++) {
    b.writeUInt32LE(t.primary[i], 16 + i * ARCHIVE_TRAILER.entryBytes);
    b.writeUInt32LE(t.archive[i], 20 + i * ARCHIVE_TRAILER.entryBytes);
  }
  return b;
}

/**
 * A cached table; undefined (a miss: fetched again) if it fails the checks a fetched one must
 * pass. One entry mapping 64 to 64 is a linked object's identity table (or a built object of a
 * single record at 64, whose reads then go unchecked by record-check: its table cannot misdirect).
 */
function decodeTable(b: Buffer): OffsetTable | undefined {
  if (b.length < 16) return undefined;
  const n = b.readUInt32LE(0);
  if (b.length !== 16 + n * ARCHIVE_TRAILER.entryBytes) return undefined;
  let t: OffsetTable;
  try {
    t = parseOffsetTable(b.subarray(16), Number(b.readBigUInt64LE(8)), n);
  } catch {
    return undefined;
  }
  if (n === 1 && t.primary[0] === SEGMENT_HEADER.lengthBytes && t.archive[0] === SEGMENT_HEADER.lengthBytes) t.linked = true;
  return t;
}

function missingSegment(store: BackingStore, segmentId: number): ChronoError {
  return new ChronoError('ARCHIVE_MISSING', `archived segment ${segmentId} is missing from ${store.description}`, { segment: segmentId });
}

function prunedSegment(segmentId: number, primaryOffset?: number): ChronoError {
  return new ChronoError('VERSION_PRUNED', `archived segment ${segmentId}${primaryOffset === undefined ? '' : ` (primary offset ${primaryOffset})`}: prune removed this version from the archive; no kept point reads it`, { segment: segmentId, offset: primaryOffset ?? null });
}
