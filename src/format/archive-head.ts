import { ARCHIVE_HEAD, ARCHIVE_TRAILER, SEGMENT_HEADER } from './constants';
import { checkPrelude, newPrelude, sealPrelude } from './header-check';

/**
 * The archive's head (`volume.cvhd`): how far the archive is known to reach. Rewritten after each
 * segment is archived and read back, before its primary copy is recycled, so every segment from
 * 1 to lastSegment was in the archive when it was written: recovery can tell a missing newest
 * object from an archive that simply ends there.
 */
export interface ArchiveHead {
  volumeId: Buffer;
  lastSegment: number;
  /** The sequence number after lastSegment's last record: the next segment's firstSeq. */
  nextSeq: number;
  /** Random, new at each open of the volume that wrote it (0: unknown, a head written before it). */
  writer?: bigint;
  /** lastSegment's SEAL bodyCrc (0: unknown): a copy of the volume that sealed it otherwise differs. */
  sealCrc?: number;
}

const O = ARCHIVE_HEAD.off;
const SPEC = { what: 'archive head', magic: ARCHIVE_HEAD.magic, lengthBytes: ARCHIVE_HEAD.lengthBytes, crcOffset: O.crc };

export function encodeArchiveHead(h: ArchiveHead): Buffer {
  const b = newPrelude(SPEC);
  h.volumeId.copy(b, O.volumeId, 0, 16);
  b.writeUInt32LE(h.lastSegment, O.lastSegment);
  b.writeBigUInt64LE(BigInt(h.nextSeq), O.nextSeq);
  b.writeBigUInt64LE(h.writer ?? 0n, O.writer);
  b.writeUInt32LE(h.sealCrc ?? 0, O.sealCrc);
  return sealPrelude(b, SPEC);
}

export function decodeArchiveHead(b: Buffer, context: Record<string, unknown> = {}): ArchiveHead {
  checkPrelude(b, SPEC, context);
  return {
    volumeId: Buffer.from(b.subarray(O.volumeId, O.volumeId + 16)),
    lastSegment: b.readUInt32LE(O.lastSegment),
    nextSeq: Number(b.readBigUInt64LE(O.nextSeq)),
    writer: b.readBigUInt64LE(O.writer),
    sealCrc: b.readUInt32LE(O.sealCrc),
  };
}

/**
 * The head that follows an archived segment object (as buildArchiveObject's parts: the segment
 * header first, the trailer last). Every kept record takes one seq, so the next is the
 * segment's firstSeq plus the kept-record count.
 */
export function archiveHeadAfter(parts: Buffer[], volumeId: Buffer, segmentId: number): ArchiveHead {
  const firstSeq = Number(parts[0].readBigUInt64LE(SEGMENT_HEADER.off.firstSeq));
  const kept = parts[parts.length - 1].readUInt32LE(ARCHIVE_TRAILER.off.entryCount);
  return { volumeId, lastSegment: segmentId, nextSeq: firstSeq + kept };
}
