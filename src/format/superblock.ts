import { randomBytes } from 'node:crypto';
import { FORMAT_VERSION, SUPERBLOCK } from './constants';
import { crc32c } from './crc';
import { checkHeader } from './header-check';

export interface Superblock {
  volumeId: Buffer; // 16 bytes
  volumeSizeBytes: number;
  blockSizeBytes: number;
  segmentSizeBytes: number;
  workingSetSegments: number;
  createdMs: number;
}

const O = SUPERBLOCK.off;

export function newVolumeId(): Buffer {
  return randomBytes(16);
}

export function encodeSuperblock(sb: Superblock): Buffer {
  const b = Buffer.alloc(SUPERBLOCK.lengthBytes);
  SUPERBLOCK.magic.copy(b, O.magic);
  b.writeUInt16LE(FORMAT_VERSION, O.version);
  b.writeUInt16LE(SUPERBLOCK.lengthBytes, O.headerLength);
  b.writeUInt32LE(0, O.flags);
  sb.volumeId.copy(b, O.volumeId, 0, 16);
  b.writeBigUInt64LE(BigInt(sb.volumeSizeBytes), O.volumeSizeBytes);
  b.writeUInt32LE(sb.blockSizeBytes, O.blockSizeBytes);
  b.writeUInt32LE(sb.segmentSizeBytes, O.segmentSizeBytes);
  b.writeUInt32LE(sb.workingSetSegments, O.workingSetSegments);
  b.writeBigUInt64LE(BigInt(sb.createdMs), O.createdMs);
  b.writeUInt32LE(crc32c(b.subarray(0, O.crc)), O.crc);
  return b;
}

export function decodeSuperblock(b: Buffer, context: Record<string, unknown> = {}): Superblock {
  const short = b.length < SUPERBLOCK.lengthBytes;
  const padded = short ? Buffer.concat([b, Buffer.alloc(SUPERBLOCK.lengthBytes - b.length)]) : b;
  checkHeader({
    what: 'superblock',
    magicOk: padded.subarray(0, 8).equals(SUPERBLOCK.magic),
    version: padded.readUInt16LE(O.version),
    headerLength: short ? b.length : padded.readUInt16LE(O.headerLength),
    expectedLength: SUPERBLOCK.lengthBytes,
    flags: padded.readUInt32LE(O.flags),
    covered: padded.subarray(0, O.crc),
    storedCrc: padded.readUInt32LE(O.crc),
  }, context);
  return {
    volumeId: Buffer.from(b.subarray(O.volumeId, O.volumeId + 16)),
    volumeSizeBytes: Number(b.readBigUInt64LE(O.volumeSizeBytes)),
    blockSizeBytes: b.readUInt32LE(O.blockSizeBytes),
    segmentSizeBytes: b.readUInt32LE(O.segmentSizeBytes),
    workingSetSegments: b.readUInt32LE(O.workingSetSegments),
    createdMs: Number(b.readBigUInt64LE(O.createdMs)),
  };
}
