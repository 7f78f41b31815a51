import { LRUCache } from 'lru-cache';
import { ARCHIVE_TRAILER } from '../format/constants';
import { ChronoError } from '../errors';
import { BackingStore } from './backing-store';
import { OffsetTable, archiveKey, identityTable, parseOffsetTable, toArchiveOffset } from './archive-object';
import { readObjectEnd } from './object-end';

/** Archived objects are fetched in aligned chunks of this size: a scan costs one ranged read per chunk. */
const CHUNK_BYTES = 1024 * 1024;
const CHUNKS_CACHED = 16;

/**
 * Ranged reads of archived segments in primary coordinates: the index keeps locations as they
 * were in the primary log, and each object's offset table translates them. Tables and recently
 * fetched chunks are cached (chunks hold verified-on-use data: every block is still checked
 * against its CRC by the block reader).
 */
export class ArchiveReader {
  private readonly tables: LRUCache<number, OffsetTable>;
  private readonly chunks = new LRUCache<string, Promise<Buffer>>({ max: CHUNKS_CACHED });
  /** Per segment, where the last read ended (archive offset): a read starting there is a scan. */
  private readonly lastEnd = new LRUCache<number, number>({ max: 64 });

  constructor(private readonly store: BackingStore, cacheSegments: number) {
    this.tables = new LRUCache({ max: cacheSegments });
  }

  async table(segmentId: number): Promise<OffsetTable> {
    const cached = this.tables.get(segmentId);
    if (cached) return cached;
    const key = archiveKey(segmentId);
    const size = await this.store.size(key);
    if (size === undefined) throw new ChronoError('ARCHIVE_MISSING', `archived segment ${segmentId} is missing from ${this.store.description}`, { segment: segmentId });
    const ctx = { segment: segmentId, archive: true };
    const trailer = await readObjectEnd(this.store, key, size, ctx);
    if (trailer.linked) {
      const identity = identityTable(trailer.dataEnd);
      this.tables.set(segmentId, identity);
      return identity;
    }
    const tableBytes = trailer.entryCount * ARCHIVE_TRAILER.entryBytes;
    const raw = await this.store.getRange(key, trailer.tableOffset, tableBytes);
    const table = parseOffsetTable(raw, trailer.tableOffset, trailer.entryCount);
    this.tables.set(segmentId, table);
    return table;
  }

  /** Reads `length` bytes at a primary offset of an archived segment. */
  async read(segmentId: number, primaryOffset: number, length: number): Promise<Buffer> {
    const table = await this.table(segmentId);
    const at = toArchiveOffset(table, primaryOffset);
    if (at === undefined || at + length > table.tableOffset) {
      throw new ChronoError('CORRUPT_LOG', `archived segment ${segmentId} has no record at primary offset ${primaryOffset}`, { segment: segmentId, offset: primaryOffset });
    }
    const sequential = this.lastEnd.get(segmentId) === at;
    this.lastEnd.set(segmentId, at + length);
    // An isolated read fetches just its bytes; a scan goes by chunks with the next one fetched ahead.
    if (!sequential && !this.chunks.has(`${segmentId}:${at - (at % CHUNK_BYTES)}`)) return this.store.getRange(archiveKey(segmentId), at, length);
    const out = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      const pos = at + done;
      const start = pos - (pos % CHUNK_BYTES);
      const chunkP = this.chunk(segmentId, start, Math.min(CHUNK_BYTES, table.tableOffset - start));
      // Scans: fetch the next chunk while this one is consumed.
      const next = start + CHUNK_BYTES;
      if (next < table.tableOffset) void this.chunk(segmentId, next, Math.min(CHUNK_BYTES, table.tableOffset - next)).catch(() => undefined);
      const chunk = await chunkP;
      const n = Math.min(length - done, start + chunk.length - pos);
      chunk.copy(out, done, pos - start, pos - start + n);
      done += n;
    }
    return out;
  }

  private chunk(segmentId: number, start: number, length: number): Promise<Buffer> {
    const key = `${segmentId}:${start}`;
    let p = this.chunks.get(key);
    if (!p) {
      p = this.store.getRange(archiveKey(segmentId), start, length);
      p.catch(() => this.chunks.delete(key)); // a failed fetch is not remembered
      this.chunks.set(key, p);
    }
    return p;
  }
}
