import * as path from 'node:path';
import { ChronoError } from '../errors';
import { ARCHIVE_TABLE, parseTableFileName, tableFileName } from '../format/constants';
import { crc32c } from '../format/crc';
import { checkPrelude, newPrelude, sealPrelude } from '../format/header-check';
import { writeFileDurableAsync } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';
import { OffsetTable, parseOffsetTable } from './archive-object';

const O = ARCHIVE_TABLE.off;
const SPEC = { what: 'local offset table', magic: ARCHIVE_TABLE.magic, lengthBytes: ARCHIVE_TABLE.lengthBytes, crcOffset: O.crc };

export interface TableFileStats {
  /** Tables served from their local file. */
  loaded: number;
  /** Files that failed a check on load, or whose table led a read to the wrong record: removed. */
  refused: number;
}

/** Which object's table a file must be: its name says so, and so must its header. */
export interface TableFileId {
  volumeId: Buffer;
  segmentId: number;
  generation: number;
}

export function encodeTableFile(id: TableFileId, table: OffsetTable): Buffer {
  const n = table.primary.length;
  const entries = Buffer.alloc(n * ARCHIVE_TABLE.entryBytes);
  for (let i = 0; i < n; i++) {
    entries.writeUInt32LE(table.primary[i], i * ARCHIVE_TABLE.entryBytes);
    entries.writeUInt32LE(table.archive[i], i * ARCHIVE_TABLE.entryBytes + 4);
  }
  const h = newPrelude(SPEC);
  id.volumeId.copy(h, O.volumeId, 0, 16);
  h.writeBigUInt64LE(BigInt(id.segmentId), O.segmentId);
  h.writeUInt32LE(id.generation, O.generation);
  h.writeUInt32LE(n, O.entryCount);
  h.writeBigUInt64LE(BigInt(table.tableOffset), O.tableOffset);
  h.writeUInt32LE(crc32c(entries), O.tableCrc);
  return Buffer.concat([sealPrelude(h, SPEC), entries]);
}

/**
 * Decodes a local offset table file, in the house order with one error code per rule: the
 * header (BAD_MAGIC, BAD_VERSION, BAD_LENGTH, BAD_CHECKSUM, BAD_FLAGS), then the file's length
 * (BAD_LENGTH), the entries' CRC (BAD_CHECKSUM), the volume (FOREIGN_SEGMENT), the object it
 * names (ARCHIVE_MISMATCH: another segment or generation than its name), and the table's shape
 * (CORRUPT_LOG, the checks a fetched table passes).
 */
export function decodeTableFile(b: Buffer, want: TableFileId, context: Record<string, unknown> = {}): OffsetTable {
  const ctx = { segment: want.segmentId, generation: want.generation, ...context };
  checkPrelude(b, SPEC, ctx);
  const n = b.readUInt32LE(O.entryCount);
  const expected = ARCHIVE_TABLE.lengthBytes + n * ARCHIVE_TABLE.entryBytes;
  if (b.length !== expected) throw new ChronoError('BAD_LENGTH', `local offset table: ${b.length} bytes, its header makes ${expected}`, ctx);
  const entries = b.subarray(ARCHIVE_TABLE.lengthBytes);
  if (crc32c(entries) !== b.readUInt32LE(O.tableCrc)) throw new ChronoError('BAD_CHECKSUM', 'local offset table: entries checksum mismatch', ctx);
  if (!b.subarray(O.volumeId, O.volumeId + 16).equals(want.volumeId.subarray(0, 16))) throw new ChronoError('FOREIGN_SEGMENT', 'local offset table belongs to another volume', ctx);
  const segmentId = Number(b.readBigUInt64LE(O.segmentId));
  const generation = b.readUInt32LE(O.generation);
  if (segmentId !== want.segmentId || generation !== want.generation) {
    throw new ChronoError('ARCHIVE_MISMATCH', `local offset table is segment ${segmentId} generation ${generation}'s, not segment ${want.segmentId} generation ${want.generation}'s`, ctx);
  }
  return parseOffsetTable(entries, Number(b.readBigUInt64LE(O.tableOffset)), n, want.segmentId);
}

/**
 * The local offset tables of a volume (`<dir>/archive-tables/`, docs/FORMAT.md "Local offset
 * table"): the table of each built object, kept when it is archived, so the first read of an
 * archived block maps its offset without fetching the object's table (one ranged GET, not two).
 * Never a source of truth: a file that fails a check is refused (removed, the table fetched from
 * the object as before), and the reader still checks the record every read lands in, so a stale
 * table can cost a round trip, never serve another block's bytes. A volume recovered from the
 * archive alone has none: its reads fetch tables from the objects.
 */
export class ArchiveTableFiles {
  readonly stats: TableFileStats = { loaded: 0, refused: 0 };
  /** Why the last file was refused (tests, logs). */
  lastRefusal?: string;
  /** Refused files (by name), never loaded again by this process: a read-only one cannot remove them. */
  private readonly refused = new Set<string>();

  /** `writable`: false for a read-only open, which never changes the volume directory. */
  constructor(private readonly fs: FileSystem, volumeDir: string, private readonly volumeId: Buffer, private readonly writable = true) {
    this.dir = path.join(volumeDir, ARCHIVE_TABLE.dirName);
  }

  readonly dir: string;

  pathOf(segmentId: number, generation: number): string {
    return path.join(this.dir, tableFileName(segmentId, generation));
  }

  /** The table of object (segment, generation), or undefined: no file, or one that fails its checks (then removed). */
  async load(segmentId: number, generation: number): Promise<OffsetTable | undefined> {
    if (this.refused.has(tableFileName(segmentId, generation))) return undefined;
    let b: Buffer;
    try {
      b = await this.fs.readFileAsync(this.pathOf(segmentId, generation));
    } catch {
      return undefined; // none (a linked object, a recovered volume, a prune cut short)
    }
    try {
      const t = decodeTableFile(b, { volumeId: this.volumeId, segmentId, generation }, { file: this.pathOf(segmentId, generation) });
      this.stats.loaded++;
      return t;
    } catch (err) {
      this.refuse(segmentId, generation, (err as Error).message);
      return undefined;
    }
  }

  /** Writes the table of a verified object durably (temp file, fsync, rename, fsync of the directory). */
  async save(segmentId: number, generation: number, table: OffsetTable): Promise<void> {
    if (!this.writable) return;
    this.refused.delete(tableFileName(segmentId, generation));
    this.fs.mkdirp(this.dir);
    await writeFileDurableAsync(this.fs, this.pathOf(segmentId, generation), encodeTableFile({ volumeId: this.volumeId, segmentId, generation }, table));
  }

  /** Drops the file of an object about to be put (a key a cut-short prune used may be put again with other bytes). */
  remove(segmentId: number, generation: number): void {
    if (!this.writable) return;
    try {
      this.fs.remove(this.pathOf(segmentId, generation));
    } catch {
      // absent
    }
  }

  /** A file that failed its checks, or led a read to the wrong record: never used again. */
  refuse(segmentId: number, generation: number, why: string): void {
    this.stats.refused++;
    this.lastRefusal = why;
    this.refused.add(tableFileName(segmentId, generation));
    this.remove(segmentId, generation);
  }

  /**
   * Removes every table file `keep` rejects (after a prune: old generations, deleted segments).
   * Other names are left alone: a temp file may be a save under way.
   */
  sweep(keep: (segmentId: number, generation: number) => boolean): string[] {
    if (!this.writable) return [];
    const removed: string[] = [];
    for (const name of this.fs.list(this.dir)) {
      const id = parseTableFileName(name);
      if (!id || keep(id.id, id.generation)) continue;
      try {
        this.fs.remove(path.join(this.dir, name));
        removed.push(name);
      } catch {
        // gone already
      }
    }
    return removed;
  }
}
