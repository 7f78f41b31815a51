import { randomBytes } from 'node:crypto';
import { SUPERBLOCK } from './constants';
import { checkPrelude, newPrelude, sealPrelude } from './header-check';

export interface Superblock {
  volumeId: Buffer; // 16 bytes
  volumeSizeBytes: number;
  blockSizeBytes: number;
  segmentSizeBytes: number;
  workingSetSegments: number;
  createdMs: number;
}

const O = SUPERBLOCK.off;
const SPEC = { what: 'superblock', magic: SUPERBLOCK.magic, lengthBytes: SUPERBLOCK.lengthBytes, crcOffset: O.crc };

export function newVolumeId(): Buffer {
  return randomBytes(16);
}

export function encodeSuperblock(sb: Superblock): Buffer {
  const b = newPrelude(SPEC);
  sb.volumeId.copy(b, O.volumeId, 0, 16);
  b.writeBigUInt64LE(BigInt(sb.volumeSizeBytes), O.volumeSizeBytes);
  b.writeUInt32LE(sb.blockSizeBytes, O.blockSizeBytes);
  b.writeUInt32LE(sb.segmentSizeBytes, O.segmentSizeBytes);
  b.writeUInt32LE(sb.workingSetSegments, O.workingSetSegments);
  b.writeBigUInt64LE(BigInt(sb.createdMs), O.createdMs);
  return sealPrelude(b, SPEC);
}

export function decodeSuperblock(b: Buffer, context: Record<string, unknown> = {}): Superblock {
  checkPrelude(b, SPEC, context);
  return {
    volumeId: Buffer.from(b.subarray(O.volumeId, O.volumeId + 16)),
    volumeSizeBytes: Number(b.readBigUInt64LE(O.volumeSizeBytes)),
    blockSizeBytes: b.readUInt32LE(O.blockSizeBytes),
    segmentSizeBytes: b.readUInt32LE(O.segmentSizeBytes),
    workingSetSegments: b.readUInt32LE(O.workingSetSegments),
    createdMs: Number(b.readBigUInt64LE(O.createdMs)),
  };
}
