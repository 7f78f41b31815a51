import { ChronoError } from '../errors';
import { FORMAT_VERSION, SEGMENT_HEADER } from './constants';
import { crc32c } from './crc';
import { checkHeader } from './header-check';

export interface SegmentHeader {
  volumeId: Buffer;
  segmentId: number;
  firstSeq: number;
  createdMs: number;
}

const O = SEGMENT_HEADER.off;

export function encodeSegmentHeader(h: SegmentHeader): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER.lengthBytes);
  SEGMENT_HEADER.magic.copy(b, O.magic);
  b.writeUInt16LE(FORMAT_VERSION, O.version);
  b.writeUInt16LE(SEGMENT_HEADER.lengthBytes, O.headerLength);
  b.writeUInt32LE(0, O.flags);
  h.volumeId.copy(b, O.volumeId, 0, 16);
  b.writeUInt32LE(h.segmentId, O.segmentId);
  b.writeBigUInt64LE(BigInt(h.firstSeq), O.firstSeq);
  b.writeBigUInt64LE(BigInt(h.createdMs), O.createdMs);
  b.writeUInt32LE(crc32c(b.subarray(0, O.crc)), O.crc);
  return b;
}

export function decodeSegmentHeader(b: Buffer, expectVolumeId: Buffer | undefined, context: Record<string, unknown>): SegmentHeader {
  if (b.length < SEGMENT_HEADER.lengthBytes) {
    throw new ChronoError('BAD_LENGTH', `segment header: ${b.length} bytes, expected ${SEGMENT_HEADER.lengthBytes}`, context);
  }
  checkHeader({
    what: 'segment header',
    magicOk: b.subarray(0, 8).equals(SEGMENT_HEADER.magic),
    version: b.readUInt16LE(O.version),
    headerLength: b.readUInt16LE(O.headerLength),
    expectedLength: SEGMENT_HEADER.lengthBytes,
    flags: b.readUInt32LE(O.flags),
    covered: b.subarray(0, O.crc),
    storedCrc: b.readUInt32LE(O.crc),
  }, context);
  const h: SegmentHeader = {
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
