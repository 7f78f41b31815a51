import { ChronoError } from '../errors';

/**
 * Linux dm-log-writes log format (drivers/md/dm-log-writes.c): a superblock in the first
 * sector, then entries. Each entry is a 32-byte header padded to one log sector; a MARK's text
 * sits after the header in that sector; a write's data follows in nr_sectors log sectors; a
 * DISCARD carries no data. Sector numbers and counts are in log sectors. Little-endian.
 */
export const DM_LOG = {
  MAGIC: 0x6a736677736872n,
  VERSION: 1n,
  SUPER: { magic: 0, version: 8, nrEntries: 16, sectorSize: 24, bytes: 28 },
  ENTRY: { sector: 0, nrSectors: 8, flags: 16, dataLen: 24, bytes: 32 },
  FLUSH: 1 << 0,
  FUA: 1 << 1,
  DISCARD: 1 << 2,
  MARK: 1 << 3,
  METADATA: 1 << 4,
} as const;

export interface LogEntry {
  index: number;
  offsetBytes: number;
  lengthBytes: number;
  flags: number;
  mark?: string;
  /** Where the entry's data starts in the log file (writes only). */
  dataAt?: number;
}

export interface LogSource {
  size: number;
  read(position: number, length: number): Buffer;
}

export function* readDmLog(src: LogSource): Generator<LogEntry> {
  if (src.size < DM_LOG.SUPER.bytes) throw new ChronoError('BAD_LENGTH', 'dm-log-writes log: shorter than its superblock');
  const sb = src.read(0, DM_LOG.SUPER.bytes);
  if (sb.readBigUInt64LE(DM_LOG.SUPER.magic) !== DM_LOG.MAGIC) throw new ChronoError('BAD_MAGIC', 'not a dm-log-writes log (bad magic)');
  const version = sb.readBigUInt64LE(DM_LOG.SUPER.version);
  if (version !== DM_LOG.VERSION) throw new ChronoError('BAD_VERSION', `dm-log-writes log version ${version}, this build reads 1`);
  const entries = Number(sb.readBigUInt64LE(DM_LOG.SUPER.nrEntries));
  const ss = sb.readUInt32LE(DM_LOG.SUPER.sectorSize);
  if (ss < 512 || (ss & (ss - 1)) !== 0) throw new ChronoError('BAD_LENGTH', `dm-log-writes log: bad sector size ${ss}`);
  let pos = ss;
  for (let i = 0; i < entries; i++) {
    if (pos + ss > src.size) throw new ChronoError('BAD_LENGTH', `dm-log-writes log: entry ${i} runs past the end of the log`);
    const e = src.read(pos, ss);
    const sector = Number(e.readBigUInt64LE(DM_LOG.ENTRY.sector));
    const nr = Number(e.readBigUInt64LE(DM_LOG.ENTRY.nrSectors));
    const flags = Number(e.readBigUInt64LE(DM_LOG.ENTRY.flags));
    const dataLen = Number(e.readBigUInt64LE(DM_LOG.ENTRY.dataLen));
    pos += ss;
    const entry: LogEntry = { index: i, offsetBytes: sector * ss, lengthBytes: nr * ss, flags };
    if (flags & DM_LOG.MARK) {
      if (DM_LOG.ENTRY.bytes + dataLen > ss) throw new ChronoError('BAD_LENGTH', `dm-log-writes log: mark of entry ${i} overflows its sector`);
      entry.mark = e.toString('utf8', DM_LOG.ENTRY.bytes, DM_LOG.ENTRY.bytes + dataLen).replace(/\0+$/, '');
    } else if (nr > 0 && !(flags & DM_LOG.DISCARD)) {
      if (pos + nr * ss > src.size) throw new ChronoError('BAD_LENGTH', `dm-log-writes log: data of entry ${i} runs past the end of the log`);
      entry.dataAt = pos;
      pos += nr * ss;
    }
    yield entry;
  }
}
