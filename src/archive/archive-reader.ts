import { LRUCache } from 'lru-cache';
import { ARCHIVE_TRAILER } from '../format/constants';
import { decodeArchiveTrailer } from '../format/archive-trailer';
import { ChronoError } from '../errors';
import { BackingStore } from './backing-store';
import { OffsetTable, archiveKey, parseOffsetTable, toArchiveOffset } from './archive-object';

/**
 * Ranged reads of archived segments in primary coordinates: the index keeps locations as they
 * were in the primary log, and each object's offset table translates them. Tables are cached.
 */
export class ArchiveReader {
  private readonly tables: LRUCache<number, OffsetTable>;

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
    const trailer = decodeArchiveTrailer(await this.store.getRange(key, size - ARCHIVE_TRAILER.lengthBytes, ARCHIVE_TRAILER.lengthBytes), ctx);
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
    return this.store.getRange(archiveKey(segmentId), at, length);
  }
}
