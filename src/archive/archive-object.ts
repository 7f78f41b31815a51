import { ARCHIVE_TRAILER, FILE_NAMES, RecordType, SEGMENT_HEADER, segmentFileName } from '../format/constants';
import { crc32c } from '../format/crc';
import { decodeArchiveTrailer, encodeArchiveTrailer } from '../format/archive-trailer';
import { HEADER_BYTES } from '../format/record';
import { ByteSource, ScanResult, scanSegment } from '../segment/segment-scanner';
import { ChronoError } from '../errors';
import { lastAtOrBelow } from '../util/sorted-search';
import { decodeObjectEnd, OBJECT_TAIL_BYTES } from './object-end';

export function archiveKey(segmentId: number): string {
  return FILE_NAMES.archiveSegmentsPrefix + segmentFileName(segmentId);
}

export function bufferSource(b: Buffer): ByteSource {
  return { size: b.length, read: (p, l) => b.subarray(p, p + l) };
}

/**
 * The archive form of a sealed segment: its header and every record except copy-forward
 * records (their data is archived already, at the origin), sync points (they only guide the
 * replay of a primary segment) and the SEAL; then an offset table
 * mapping each kept record's primary offset to its offset here; then the trailer. Each written
 * block version is therefore archived exactly once.
 */
export function buildArchiveObject(segment: Buffer, blockSizeBytes: number, segmentId: number, volumeId: Buffer): Buffer[] {
  const scan = scanSegment(bufferSource(segment), { blockSizeBytes, volumeId, verifyData: true, segmentId });
  if (!scan.sealed) {
    throw new ChronoError('CORRUPT_LOG', `segment ${segmentId} cannot be archived: ${scan.corruptReason ?? 'it is not sealed'}`, { segment: segmentId });
  }
  const kept = keptOf(scan);
  const parts: Buffer[] = [segment.subarray(0, SEGMENT_HEADER.lengthBytes)];
  const table = Buffer.alloc(kept.length * ARCHIVE_TRAILER.entryBytes);
  let at = SEGMENT_HEADER.lengthBytes;
  let runStart = -1;
  let runEnd = -1;
  kept.forEach((r, i) => {
    const len = HEADER_BYTES + r.header.payloadLength;
    // Records back to back in the segment stay one part: no copy, few parts.
    if (r.offset !== runEnd) {
      if (runStart >= 0) parts.push(segment.subarray(runStart, runEnd));
      runStart = r.offset;
    }
    runEnd = r.offset + len;
    table.writeUInt32LE(r.offset, i * ARCHIVE_TRAILER.entryBytes);
    table.writeUInt32LE(at, i * ARCHIVE_TRAILER.entryBytes + 4);
    at += len;
  });
  if (runStart >= 0) parts.push(segment.subarray(runStart, runEnd));
  parts.push(table);
  let crc = 0;
  for (const p of parts) crc = crc32c(p, crc);
  parts.push(encodeArchiveTrailer({ entryCount: kept.length, tableOffset: at, objectCrc: crc }));
  // Parts, not one buffer: gathering 64 MiB cost the event loop 35 ms (fresh pages), and the
  // store writes parts back to back anyway.
  return parts;
}

/** Records that make versions or events: copies are archived at their origin, SYNC guides replay only. */
function keptOf(scan: ScanResult): ScanResult['records'] {
  const dropped: number[] = [RecordType.COPY, RecordType.COPY_ZERO, RecordType.SYNC];
  return scan.records.filter((r) => !dropped.includes(r.header.type));
}

/** Offsets are primary offsets in a linked object: an identity table, one entry at the first record. */
export function identityTable(dataEnd: number): OffsetTable {
  return { primary: Uint32Array.of(SEGMENT_HEADER.lengthBytes), archive: Uint32Array.of(SEGMENT_HEADER.lengthBytes), tableOffset: dataEnd, linked: true };
}

/** Do `parts`, back to back, hold exactly the bytes of `whole`? */
export function partsEqual(parts: Buffer[], whole: Buffer): boolean {
  let at = 0;
  for (const p of parts) {
    if (at + p.length > whole.length || !p.equals(whole.subarray(at, at + p.length))) return false;
    at += p.length;
  }
  return at === whole.length;
}

/** Primary offsets and archive offsets of the kept records, sorted. */
export interface OffsetTable {
  primary: Uint32Array;
  archive: Uint32Array;
  tableOffset: number;
  /** A linked object's identity table: its one entry is not the record a read lands in. */
  linked?: boolean;
}

/**
 * Decodes a built object's offset table and checks its shape: both columns strictly increase,
 * the first record follows the segment header (archive offset 64), primary offsets lie past the
 * segment header, and every record's header lies before the table. Refused with CORRUPT_LOG:
 * a damaged table must never map a read to another record's bytes.
 */
export function parseOffsetTable(tail: Buffer, tableOffset: number, entryCount: number, segmentId?: number): OffsetTable {
  const primary = new Uint32Array(entryCount);
  const archive = new Uint32Array(entryCount);
  for (let i = 0; i < entryCount; i++) {
    primary[i] = tail.readUInt32LE(i * ARCHIVE_TRAILER.entryBytes);
    archive[i] = tail.readUInt32LE(i * ARCHIVE_TRAILER.entryBytes + 4);
  }
  const bad = tableShapeProblem(primary, archive, tableOffset);
  if (bad) throw new ChronoError('CORRUPT_LOG', `archived segment ${segmentId ?? '?'}: its offset table is damaged: ${bad}`, { segment: segmentId, archive: true });
  return { primary, archive, tableOffset };
}

function tableShapeProblem(primary: Uint32Array, archive: Uint32Array, tableOffset: number): string | undefined {
  const n = primary.length;
  if (n === 0) return undefined;
  if (archive[0] !== SEGMENT_HEADER.lengthBytes) return `entry 0's archive offset is ${archive[0]}, not ${SEGMENT_HEADER.lengthBytes}`;
  if (primary[0] < SEGMENT_HEADER.lengthBytes) return `entry 0's primary offset ${primary[0]} lies in the segment header`;
  for (let i = 1; i < n; i++) {
    if (primary[i] <= primary[i - 1]) return `primary offsets do not increase at entry ${i} (${primary[i - 1]}, then ${primary[i]})`;
    if (archive[i] <= archive[i - 1]) return `archive offsets do not increase at entry ${i} (${archive[i - 1]}, then ${archive[i]})`;
  }
  if (archive[n - 1] + HEADER_BYTES > tableOffset) return `entry ${n - 1}'s record (archive offset ${archive[n - 1]}) runs into the table at ${tableOffset}`;
  return undefined;
}

/** Maps an offset inside a kept record from primary coordinates to archive coordinates. */
export function toArchiveOffset(t: OffsetTable, primaryOffset: number): number | undefined {
  const i = lastAtOrBelow(t.primary, primaryOffset);
  return i < 0 ? undefined : t.archive[i] + (primaryOffset - t.primary[i]);
}

/** The offset table of a whole built object (one read back and verified), checked as a fetched one is. */
export function builtTableOf(obj: Buffer, segmentId: number): OffsetTable {
  const ctx = { segment: segmentId, archive: true };
  const trailer = decodeArchiveTrailer(obj.subarray(obj.length - ARCHIVE_TRAILER.lengthBytes), ctx);
  const tableEnd = trailer.tableOffset + trailer.entryCount * ARCHIVE_TRAILER.entryBytes;
  if (tableEnd !== obj.length - ARCHIVE_TRAILER.lengthBytes) throw new ChronoError('BAD_LENGTH', `archived segment ${segmentId}: table length mismatch`, ctx);
  return parseOffsetTable(obj.subarray(trailer.tableOffset, tableEnd), trailer.tableOffset, trailer.entryCount, segmentId);
}

export interface ParsedArchiveObject {
  scan: ScanResult;
  table: OffsetTable;
}

/** Validates a whole archived object (trailer, object CRC, every record) and scans it. */
export function parseArchiveObject(obj: Buffer, blockSizeBytes: number, segmentId: number, volumeId: Buffer | undefined): ParsedArchiveObject {
  const ctx = { segment: segmentId, archive: true };
  if (obj.length < SEGMENT_HEADER.lengthBytes + ARCHIVE_TRAILER.lengthBytes) throw new ChronoError('BAD_LENGTH', `archived segment ${segmentId} is truncated`, ctx);
  const end = decodeObjectEnd(obj.subarray(Math.max(0, obj.length - OBJECT_TAIL_BYTES)), obj.length, ctx);
  if (end.linked) return parseLinkedObject(obj, blockSizeBytes, segmentId, volumeId, ctx);
  const trailer = decodeArchiveTrailer(obj.subarray(obj.length - ARCHIVE_TRAILER.lengthBytes), ctx);
  const tableEnd = trailer.tableOffset + trailer.entryCount * ARCHIVE_TRAILER.entryBytes;
  if (tableEnd !== obj.length - ARCHIVE_TRAILER.lengthBytes) throw new ChronoError('BAD_LENGTH', `archived segment ${segmentId}: table length mismatch`, ctx);
  if (crc32c(obj.subarray(0, tableEnd)) !== trailer.objectCrc) throw new ChronoError('BAD_CHECKSUM', `archived segment ${segmentId}: object checksum mismatch`, ctx);
  const table = parseOffsetTable(obj.subarray(trailer.tableOffset, tableEnd), trailer.tableOffset, trailer.entryCount, segmentId);
  const scan = scanSegment(bufferSource(obj.subarray(0, trailer.tableOffset)), { blockSizeBytes, volumeId, verifyData: true, segmentId });
  if (scan.corruptAt !== undefined || scan.tornAt !== undefined || scan.records.length !== trailer.entryCount) {
    throw new ChronoError('CORRUPT_LOG', `archived segment ${segmentId} is damaged${scan.corruptReason ? `: ${scan.corruptReason}` : ''}`, ctx);
  }
  return { scan, table };
}

/**
 * A linked object is the sealed segment itself: every record is checked (block data too), the
 * SEAL must end it, and COPY, COPY_ZERO and SYNC records are left out of what it yields, so it
 * reads exactly as the built form of the same segment would.
 */
function parseLinkedObject(obj: Buffer, blockSizeBytes: number, segmentId: number, volumeId: Buffer | undefined, ctx: Record<string, unknown>): ParsedArchiveObject {
  const scan = scanSegment(bufferSource(obj), { blockSizeBytes, volumeId, verifyData: true, segmentId });
  if (!scan.sealed || scan.validEnd !== obj.length) {
    throw new ChronoError('CORRUPT_LOG', `archived segment ${segmentId} is damaged${scan.corruptReason ? `: ${scan.corruptReason}` : ': not a whole sealed segment'}`, ctx);
  }
  const kept = keptOf(scan);
  const offsets = Uint32Array.from(kept, (r) => r.offset);
  return { scan: { ...scan, records: kept }, table: { primary: offsets, archive: offsets, tableOffset: obj.length - OBJECT_TAIL_BYTES, linked: true } };
}

/**
 * A compacted rewrite of an archived object (prune): its segment header, then only the records
 * whose seq `keep` accepts, back to back, then an offset table that maps each kept record's
 * ORIGINAL primary offset to its new place (so index locations stay valid), then the trailer.
 * The built form: a reader cannot tell it from any other built object except by its entry count.
 */
export function buildCompactedObject(obj: Buffer, parsed: ParsedArchiveObject, keep: (seq: number) => boolean): Buffer[] {
  const parts: Buffer[] = [obj.subarray(0, SEGMENT_HEADER.lengthBytes)];
  const kept = parsed.scan.records.map((r, i) => ({ r, primary: parsed.table.primary[i] })).filter((x) => keep(x.r.header.seq));
  const table = Buffer.alloc(kept.length * ARCHIVE_TRAILER.entryBytes);
  let at = SEGMENT_HEADER.lengthBytes;
  kept.forEach(({ r, primary }, i) => {
    const len = HEADER_BYTES + r.header.payloadLength;
    parts.push(obj.subarray(r.offset, r.offset + len));
    table.writeUInt32LE(primary, i * ARCHIVE_TRAILER.entryBytes);
    table.writeUInt32LE(at, i * ARCHIVE_TRAILER.entryBytes + 4);
    at += len;
  });
  parts.push(table);
  let crc = 0;
  for (const p of parts) crc = crc32c(p, crc);
  parts.push(encodeArchiveTrailer({ entryCount: kept.length, tableOffset: at, objectCrc: crc }));
  return parts;
}
