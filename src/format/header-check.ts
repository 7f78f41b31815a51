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
  if (f.flags !== 0) throw new ChronoError('BAD_FLAGS', `${f.what}: reserved flag bits set (0x${f.flags.toString(16)})`, context);
}
