import { ChronoError } from '../errors';
import { decodeArchiveTrailer } from '../format/archive-trailer';
import { ARCHIVE_TRAILER, RecordType, SEAL_PAYLOAD } from '../format/constants';
import { HEADER_BYTES, decodeSealPayload, readRecordHeader } from '../format/record';
import { BackingStore } from './backing-store';

/**
 * An archived segment object comes in two forms (docs/FORMAT.md): **built** (kept records, offset
 * table, trailer) or **linked** (the sealed primary segment verbatim, a hard link of it in a local
 * archive on the same file system). Its last bytes tell which: a built object ends with the
 * trailer; a linked one with its SEAL record, whose bytes at the trailer's place are a record
 * header's reserved zeros, never the trailer's magic.
 */
export const OBJECT_TAIL_BYTES = HEADER_BYTES + SEAL_PAYLOAD.lengthBytes;

export type ObjectEnd =
  | { linked: false; entryCount: number; tableOffset: number; objectCrc: number }
  /** `dataEnd`: where the SEAL record starts (reads never go past it); `lastSeq`: the SEAL's. */
  | { linked: true; dataEnd: number; lastSeq: number };

/** Decodes the last min(OBJECT_TAIL_BYTES, size) bytes of an object of `size` bytes. */
export function decodeObjectEnd(tail: Buffer, size: number, context: Record<string, unknown>): ObjectEnd {
  const trailerAt = tail.length - ARCHIVE_TRAILER.lengthBytes;
  if (trailerAt < 0) throw new ChronoError('BAD_LENGTH', 'archived segment: truncated', context);
  const trailerBytes = tail.subarray(trailerAt);
  if (trailerBytes.readUInt32LE(ARCHIVE_TRAILER.off.magic) === ARCHIVE_TRAILER.magic || tail.length < OBJECT_TAIL_BYTES) {
    return { linked: false, ...decodeArchiveTrailer(trailerBytes, context) };
  }
  let seal;
  try {
    const h = readRecordHeader(tail, 0, tail.subarray(HEADER_BYTES), context);
    if (h.type !== RecordType.SEAL || h.payloadLength !== SEAL_PAYLOAD.lengthBytes) throw new Error('not a SEAL record');
    seal = decodeSealPayload(tail.subarray(HEADER_BYTES));
  } catch {
    // Neither form: report it as the (damaged) trailer of a built object, as before linked ones.
    return { linked: false, ...decodeArchiveTrailer(trailerBytes, context) };
  }
  return { linked: true, dataEnd: size - OBJECT_TAIL_BYTES, lastSeq: seal.lastSeq };
}

/** Reads and decodes an object's end (one ranged read). */
export async function readObjectEnd(store: BackingStore, key: string, size: number, context: Record<string, unknown>): Promise<ObjectEnd> {
  const n = Math.min(size, OBJECT_TAIL_BYTES);
  return decodeObjectEnd(await store.getRange(key, size - n, n), size, context);
}

/** Seq-taking records in the object: the next segment starts at its firstSeq plus this. */
export function keptRecords(end: ObjectEnd, firstSeq: number): number {
  // A linked segment's SEAL names its highest seq; copies carry older seqs, so lastSeq is at
  // least firstSeq − 1 (the writer starts it there) and the new records are firstSeq … lastSeq.
  return end.linked ? Math.max(0, end.lastSeq - firstSeq + 1) : end.entryCount;
}
