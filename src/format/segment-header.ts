import { ChronoError } from '../errors';
import { SEGMENT_HEADER, SegmentFlags } from './constants';
import { checkPrelude, newPrelude, sealPrelude } from './header-check';

export interface SegmentHeader {
  /** SegmentFlags bits; new segments carry syncPoints. */
  flags: number;
  volumeId: Buffer;
  segmentId: number;
  firstSeq: number;
  createdMs: number;
}

const O = SEGMENT_HEADER.off;
const SPEC = { what: 'segment header', magic: SEGMENT_HEADER.magic, lengthBytes: SEGMENT_HEADER.lengthBytes, crcOffset: O.crc, knownFlags: SegmentFlags.syncPoints };

export function encodeSegmentHeader(h: SegmentHeader): Buffer {
  const b = newPrelude(SPEC);
  b.writeUInt32LE(h.flags, O.flags);
  h.volumeId.copy(b, O.volumeId, 0, 16);
  b.writeUInt32LE(h.segmentId, O.segmentId);
  b.writeBigUInt64LE(BigInt(h.firstSeq), O.firstSeq);
  b.writeBigUInt64LE(BigInt(h.createdMs), O.createdMs);
  return sealPrelude(b, SPEC);
}

export function decodeSegmentHeader(b: Buffer, expectVolumeId: Buffer | undefined, context: Record<string, unknown>): SegmentHeader {
  checkPrelude(b, SPEC, context);
  const h: SegmentHeader = {
    flags: b.readUInt32LE(O.flags),
    volumeId: Buffer.from(b.subarray(O.volumeId, O.volumeId + 16)),
    segmentId: b.readUInt32LE(O.segmentId),
    firstSeq: Number(b.readBigUInt64LE(O.firstSeq)),
    createdMs: Number(b.readBigUInt64LE(O.createdMs)),
  };
  if (expectVolumeId && !h.volumeId.equals(expectVolumeId)) {
    throw new ChronoError('FOREIGN_SEGMENT', `segment ${h.segmentId} belongs to another volume`, context);
  }
  return h;
}
