import { ChronoError } from '../errors';
import { ARCHIVE_TRAILER, FORMAT_VERSION } from './constants';
import { crc32c } from './crc';
import { checkHeader } from './header-check';

export interface ArchiveTrailer {
  entryCount: number;
  tableOffset: number;
  objectCrc: number;
}

const O = ARCHIVE_TRAILER.off;

export function encodeArchiveTrailer(t: ArchiveTrailer): Buffer {
  const b = Buffer.alloc(ARCHIVE_TRAILER.lengthBytes);
  b.writeUInt32LE(ARCHIVE_TRAILER.magic, O.magic);
  b.writeUInt16LE(FORMAT_VERSION, O.version);
  b.writeUInt16LE(ARCHIVE_TRAILER.lengthBytes, O.headerLength);
  b.writeUInt32LE(t.entryCount, O.entryCount);
  b.writeBigUInt64LE(BigInt(t.tableOffset), O.tableOffset);
  b.writeUInt32LE(t.objectCrc, O.objectCrc);
  b.writeUInt32LE(crc32c(b.subarray(0, O.crc)), O.crc);
  return b;
}

export function decodeArchiveTrailer(b: Buffer, context: Record<string, unknown>): ArchiveTrailer {
  if (b.length !== ARCHIVE_TRAILER.lengthBytes) throw new ChronoError('BAD_LENGTH', 'archive trailer: truncated', context);
  checkHeader({
    what: 'archive trailer',
    magicOk: b.readUInt32LE(O.magic) === ARCHIVE_TRAILER.magic,
    version: b.readUInt16LE(O.version),
    headerLength: b.readUInt16LE(O.headerLength),
    expectedLength: ARCHIVE_TRAILER.lengthBytes,
    flags: b.readUInt32LE(O.flags),
    covered: b.subarray(0, O.crc),
    storedCrc: b.readUInt32LE(O.crc),
  }, context);
  return { entryCount: b.readUInt32LE(O.entryCount), tableOffset: Number(b.readBigUInt64LE(O.tableOffset)), objectCrc: b.readUInt32LE(O.objectCrc) };
}
