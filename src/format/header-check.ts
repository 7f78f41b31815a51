import { ChronoError } from '../errors';
import { FORMAT_VERSION } from './constants';
import { crc32c } from './crc';

export interface HeaderFacts {
  what: string;
  magicOk: boolean;
  version: number;
  headerLength: number;
  expectedLength: number;
  flags: number;
  /** Flag bits this reader knows; every other bit is reserved and must be zero. */
  knownFlags?: number;
  /** Bytes covered by the CRC, and the stored CRC. */
  covered: Uint8Array;
  storedCrc: number;
  /** Extra bytes the CRC continues over (e.g. an event payload). */
  coveredExtra?: Uint8Array;
}

/**
 * Validates in the house order: magic → version → length → checksum → flags, one error code per
 * rule, so a foreign file, a newer format and a damaged header are told apart.
 */
export function checkHeader(f: HeaderFacts, context: Record<string, unknown> = {}): void {
  if (!f.magicOk) throw new ChronoError('BAD_MAGIC', `${f.what}: bad magic`, context);
  if (f.version !== FORMAT_VERSION) {
    throw new ChronoError('BAD_VERSION', `${f.what}: format version ${f.version}, this build reads ${FORMAT_VERSION}`, context);
  }
  if (f.headerLength !== f.expectedLength) {
    throw new ChronoError('BAD_LENGTH', `${f.what}: header length ${f.headerLength}, expected ${f.expectedLength}`, context);
  }
  let crc = crc32c(f.covered);
  if (f.coveredExtra) crc = crc32c(f.coveredExtra, crc);
  if (crc !== f.storedCrc) throw new ChronoError('BAD_CHECKSUM', `${f.what}: checksum mismatch`, context);
  const reserved = f.flags & ~(f.knownFlags ?? 0);
  if (reserved !== 0) throw new ChronoError('BAD_FLAGS', `${f.what}: reserved flag bits set (0x${reserved.toString(16)})`, context);
}

/**
 * The four headers that start with an 8-byte ASCII magic (superblock, segment header, index run,
 * manifest) share their first 16 bytes: magic, version u16 at 8, headerLength u16 at 10,
 * flags u32 at 12; each ends its fixed part with a CRC32C at `crcOffset`.
 */
export interface PreludeSpec {
  what: string;
  magic: Buffer;
  lengthBytes: number;
  crcOffset: number;
  knownFlags?: number;
}

/** A zeroed header with the prelude written; fill the fields, then call sealPrelude. */
export function newPrelude(spec: PreludeSpec): Buffer {
  const b = Buffer.alloc(spec.lengthBytes);
  spec.magic.copy(b, 0);
  b.writeUInt16LE(FORMAT_VERSION, 8);
  b.writeUInt16LE(spec.lengthBytes, 10);
  return b;
}

export function sealPrelude(b: Buffer, spec: PreludeSpec): Buffer {
  b.writeUInt32LE(crc32c(b.subarray(0, spec.crcOffset)), spec.crcOffset);
  return b;
}

/**
 * Validates a prelude header in the house order; a short buffer fails on its length. `wholeFile`:
 * the buffer is a file that holds the header alone (the superblock, `volume.cvsb`), so a longer
 * one fails on its length too.
 */
export function checkPrelude(b: Buffer, spec: PreludeSpec, context: Record<string, unknown>, o: { wholeFile?: boolean } = {}): void {
  const short = b.length < spec.lengthBytes || (o.wholeFile === true && b.length > spec.lengthBytes);
  const p = b.length < spec.lengthBytes ? Buffer.concat([b, Buffer.alloc(spec.lengthBytes - b.length)]) : b;
  checkHeader({
    what: spec.what,
    magicOk: p.subarray(0, 8).equals(spec.magic),
    version: p.readUInt16LE(8),
    headerLength: short ? b.length : p.readUInt16LE(10),
    expectedLength: spec.lengthBytes,
    flags: p.readUInt32LE(12),
    knownFlags: spec.knownFlags,
    covered: p.subarray(0, spec.crcOffset),
    storedCrc: p.readUInt32LE(spec.crcOffset),
  }, context);
}
