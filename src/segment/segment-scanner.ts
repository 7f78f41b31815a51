import { ChronoError, isChronoError } from '../errors';
import { RECORD_HEADER, RecordType, SEGMENT_HEADER, SegmentFlags } from '../format/constants';
import { checkUnits, crc32c } from '../format/crc';
import { decodeSegmentHeader, SegmentHeader } from '../format/segment-header';
import { HEADER_BYTES, RecordHeader, checkOwnPayload, decodeSealPayload, decodeSyncPayload, hasBlockData, hasSmallPayload, readRecordHeader, unitBytes } from '../format/record';

/** Random access to a segment's bytes: a primary file or an archived object loaded whole. */
export interface ByteSource {
  size: number;
  read(position: number, length: number): Buffer;
  /**
   * Optional: the same bytes in memory the source reuses, good only until its next read. Block
   * data is only checked, never kept, so a file source need not allocate a buffer per record
   * (a replay of 32 MiB of tail made 32 MiB of garbage, and a collection the next read met).
   */
  readTransient?(position: number, length: number): Buffer;
}

export interface ScannedRecord {
  offset: number;
  header: RecordHeader;
  /** The payload of a record with a small one (EVENT, SYNC, SEAL, ...); block data is never kept. */
  payload?: Buffer;
}

export interface ScanResult {
  header: SegmentHeader;
  records: ScannedRecord[];
  /** Offset after the last good record. */
  validEnd: number;
  sealed: boolean;
  /** Set when a bad record has no good record after it: a torn tail, safe to cut. */
  tornAt?: number;
  /** Set when damage is followed by good records: real corruption. */
  corruptAt?: number;
  corruptReason?: string;
}

export interface ScanOptions {
  blockSizeBytes: number;
  volumeId?: Buffer;
  /** Check every block's CRC (tail replay, verify); otherwise headers only. */
  verifyData: boolean;
  segmentId: number;
  /**
   * Every byte before this offset was acknowledged (a checkpoint covers it, or a later
   * segment's sync point proves the whole segment durable: Infinity). Damage there, or a
   * segment that ends before it, is corruption, never a torn tail. Default 0.
   */
  acknowledgedThrough?: number;
}

/**
 * Walks a segment's records. A bad record is a torn tail only if no valid record header follows
 * it; otherwise it is corruption and is reported, never skipped over silently.
 */
export function scanSegment(src: ByteSource, opts: ScanOptions): ScanResult {
  const ctx = { segment: opts.segmentId };
  const header = decodeSegmentHeader(src.read(0, SEGMENT_HEADER.lengthBytes), opts.volumeId, ctx);
  const records: ScannedRecord[] = [];
  const unit = unitBytes(opts.blockSizeBytes);
  let at = SEGMENT_HEADER.lengthBytes;
  let bodyCrc = 0;
  let count = 0;
  const acked = opts.acknowledgedThrough ?? 0;
  while (at < src.size) {
    let rec: ScannedRecord;
    try {
      rec = readOne(src, at, opts, unit, { ...ctx, offset: at });
    } catch (err) {
      if (!isChronoError(err)) throw err;
      // A whole, valid record of a type this build does not know was written by a newer writer:
      // neither damage nor a torn tail, and never skipped (docs/FORMAT.md).
      if (err.code === 'UNKNOWN_RECORD_TYPE') throw err;
      if (at < acked) return { header, records, validEnd: at, sealed: false, corruptAt: at, corruptReason: `${err.message}, below the acknowledged position ${ackText(acked)}` };
      const resumesAt = findNextRecord(src, at + 1, opts, unit, ctx);
      if (resumesAt === undefined) return { header, records, validEnd: at, sealed: false, tornAt: at };
      // Valid records after damage. In a segment with sync points, damage at or after the last
      // acknowledged position is an unsynced tail that a power loss persisted out of order: cut.
      if ((header.flags & SegmentFlags.syncPoints) && durableThrough(src, records, resumesAt, opts, unit, ctx) <= at) {
        return { header, records, validEnd: at, sealed: false, tornAt: at };
      }
      return { header, records, validEnd: at, sealed: false, corruptAt: at, corruptReason: err.message };
    }
    if (rec.header.type === RecordType.SEAL) {
      const seal = decodeSealPayload(rec.payload!);
      if (seal.recordCount !== count || (opts.verifyData && seal.bodyCrc !== bodyCrc)) {
        return { header, records, validEnd: at, sealed: false, corruptAt: at, corruptReason: 'seal record does not match the segment body' };
      }
      return { header, records, validEnd: at + HEADER_BYTES + rec.header.payloadLength, sealed: true };
    }
    if (opts.verifyData) bodyCrc = crc32c(src.read(at, HEADER_BYTES), bodyCrc);
    count++;
    records.push(rec);
    at += HEADER_BYTES + rec.header.payloadLength;
  }
  if (at < acked) return { header, records, validEnd: at, sealed: false, corruptAt: at, corruptReason: `the segment ends before the acknowledged position ${ackText(acked)}` };
  return { header, records, validEnd: at, sealed: false };
}

function ackText(acked: number): string {
  return acked === Infinity ? '(the whole segment: a later sync point or checkpoint vouches for it)' : String(acked);
}

/**
 * The furthest position any valid SYNC record in the segment names, looking past damage too;
 * 0 when it holds none. Replay asks it of later segments: a sync point there was appended only
 * after every earlier segment was durable, so it makes them acknowledged whole.
 */
export function furthestSyncPoint(src: ByteSource, opts: ScanOptions): number {
  if (src.size <= SEGMENT_HEADER.lengthBytes) return 0;
  return durableThrough(src, [], SEGMENT_HEADER.lengthBytes, opts, unitBytes(opts.blockSizeBytes), { segment: opts.segmentId });
}

function readOne(src: ByteSource, at: number, opts: ScanOptions, unit: number, ctx: Record<string, unknown>): ScannedRecord {
  if (at + HEADER_BYTES > src.size) throw new ChronoError('BAD_LENGTH', 'record header runs past the end', ctx);
  const hb = src.read(at, HEADER_BYTES);
  const payloadLength = hb.readUInt32LE(RECORD_HEADER.off.payloadLength);
  const type = hb.readUInt8(RECORD_HEADER.off.type);
  if (at + HEADER_BYTES + payloadLength > src.size) throw new ChronoError('BAD_LENGTH', 'record runs past the end', ctx);
  const small = hasSmallPayload(type) ? src.read(at + HEADER_BYTES, payloadLength) : undefined;
  const header = readRecordHeader(hb, 0, small, ctx);
  // Its own CRC: damage there is damage like any other, found while scanning.
  checkOwnPayload(header.type, small, ctx);
  if (hasBlockData(header.type) && header.payloadLength !== header.blockCount * unit) {
    throw new ChronoError('BAD_LENGTH', 'data record length does not match its block count', ctx);
  }
  if (opts.verifyData && hasBlockData(header.type)) {
    const units = src.readTransient ? src.readTransient(at + HEADER_BYTES, payloadLength) : src.read(at + HEADER_BYTES, payloadLength);
    const bad = checkUnits(units, 0, opts.blockSizeBytes, header.blockCount);
    if (bad >= 0) throw new ChronoError('CORRUPT_BLOCK', `block ${header.firstBlock + bad} fails its checksum`, { ...ctx, block: header.firstBlock + bad });
  }
  return { offset: at, header, payload: small };
}

/**
 * The furthest position any SYNC record says was durable: those before the damage, and those
 * found by resynchronising past it (a sync that completed after the damaged bytes were written
 * proves they were on disk, so the damage is real).
 */
function durableThrough(src: ByteSource, before: ScannedRecord[], from: number, opts: ScanOptions, unit: number, ctx: Record<string, unknown>): number {
  let d = 0;
  const note = (r: ScannedRecord) => {
    if (r.header.type === RecordType.SYNC) d = Math.max(d, decodeSyncPayload(r.payload!));
  };
  before.forEach(note);
  for (let at: number | undefined = from; at !== undefined && at < src.size; ) {
    try {
      const r = readOne(src, at, { ...opts, verifyData: false }, unit, ctx);
      note(r);
      at += HEADER_BYTES + r.header.payloadLength;
    } catch {
      at = findNextRecord(src, at + 1, opts, unit, ctx);
    }
  }
  return d;
}

function findNextRecord(src: ByteSource, from: number, opts: ScanOptions, unit: number, ctx: Record<string, unknown>): number | undefined {
  const chunkBytes = 1 << 20;
  for (let base = from; base < src.size; base += chunkBytes) {
    const chunk = src.read(base, Math.min(chunkBytes + HEADER_BYTES, src.size - base));
    for (let i = chunk.indexOf(MAGIC); i >= 0 && i < chunkBytes; i = chunk.indexOf(MAGIC, i + 1)) {
      try {
        readOne(src, base + i, { ...opts, verifyData: false }, unit, ctx);
        return base + i;
      } catch {
        // Not a record: data that happens to contain the magic.
      }
    }
  }
  return undefined;
}

const MAGIC = (() => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(RECORD_HEADER.magic);
  return b;
})();
