import { DM_LOG } from '../../src/format/dm-log-writes';

export type LogOp =
  | { write: { offsetBytes: number; data: Buffer }; flags?: number }
  | { discard: { offsetBytes: number; lengthBytes: number } }
  | { flush: true }
  | { mark: string };

/**
 * Writes a log the way the kernel's dm-log-writes target lays it out (entries padded to the log
 * sector, MARK text after the entry header in its sector, data in the following sectors), so the
 * importer is tested against the real format rather than our reading of it.
 */
export function writeDmLog(ops: LogOp[], sectorSize = 512): Buffer {
  const parts: Buffer[] = [];
  const sb = Buffer.alloc(sectorSize);
  sb.writeBigUInt64LE(DM_LOG.MAGIC, DM_LOG.SUPER.magic);
  sb.writeBigUInt64LE(DM_LOG.VERSION, DM_LOG.SUPER.version);
  sb.writeBigUInt64LE(BigInt(ops.length), DM_LOG.SUPER.nrEntries);
  sb.writeUInt32LE(sectorSize, DM_LOG.SUPER.sectorSize);
  parts.push(sb);
  for (const op of ops) {
    const e = Buffer.alloc(sectorSize);
    let data: Buffer | undefined;
    if ('write' in op) {
      if (op.write.offsetBytes % sectorSize || op.write.data.length % sectorSize) throw new Error('writes are whole log sectors');
      e.writeBigUInt64LE(BigInt(op.write.offsetBytes / sectorSize), DM_LOG.ENTRY.sector);
      e.writeBigUInt64LE(BigInt(op.write.data.length / sectorSize), DM_LOG.ENTRY.nrSectors);
      e.writeBigUInt64LE(BigInt(op.flags ?? 0), DM_LOG.ENTRY.flags);
      data = op.write.data;
    } else if ('discard' in op) {
      e.writeBigUInt64LE(BigInt(op.discard.offsetBytes / sectorSize), DM_LOG.ENTRY.sector);
      e.writeBigUInt64LE(BigInt(op.discard.lengthBytes / sectorSize), DM_LOG.ENTRY.nrSectors);
      e.writeBigUInt64LE(BigInt(DM_LOG.DISCARD), DM_LOG.ENTRY.flags);
    } else if ('flush' in op) {
      e.writeBigUInt64LE(BigInt(DM_LOG.FLUSH), DM_LOG.ENTRY.flags);
    } else {
      const text = Buffer.from(op.mark);
      e.writeBigUInt64LE(BigInt(DM_LOG.MARK), DM_LOG.ENTRY.flags);
      e.writeBigUInt64LE(BigInt(text.length), DM_LOG.ENTRY.dataLen);
      text.copy(e, DM_LOG.ENTRY.bytes);
    }
    parts.push(e);
    if (data) parts.push(data);
  }
  return Buffer.concat(parts);
}
