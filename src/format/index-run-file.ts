import { ChronoError } from '../errors';
import { INDEX_RUN } from './constants';
import { crc32c } from './crc';
import { checkPrelude, newPrelude, sealPrelude } from './header-check';

export interface IndexRunData {
  blocks: Float64Array;
  seqs: Float64Array;
  segs: Uint32Array;
  offs: Uint32Array;
  times: Float64Array;
  timeSeqs: Float64Array;
  firstSeq: number;
  lastSeq: number;
}

const O = INDEX_RUN.off;
const SPEC = { what: 'index run', magic: INDEX_RUN.magic, lengthBytes: INDEX_RUN.lengthBytes, crcOffset: O.crc };

function bytesOf(a: Float64Array | Uint32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Header + arrays, little-endian (typed arrays are native LE on every platform we run). */
export function encodeIndexRun(r: IndexRunData): Buffer[] {
  const body = [r.blocks, r.seqs, r.segs, r.offs, r.times, r.timeSeqs].map(bytesOf);
  let bodyCrc = 0;
  for (const part of body) bodyCrc = crc32c(part, bodyCrc);
  const h = newPrelude(SPEC);
  h.writeBigUInt64LE(BigInt(r.blocks.length), O.entryCount);
  h.writeBigUInt64LE(BigInt(r.times.length), O.timeCount);
  h.writeBigUInt64LE(BigInt(r.firstSeq), O.firstSeq);
  h.writeBigUInt64LE(BigInt(r.lastSeq), O.lastSeq);
  h.writeUInt32LE(bodyCrc, O.bodyCrc);
  return [sealPrelude(h, SPEC), ...body];
}

export function decodeIndexRun(b: Buffer, context: Record<string, unknown>): IndexRunData {
  checkPrelude(b, SPEC, context);
  const n = Number(b.readBigUInt64LE(O.entryCount));
  const m = Number(b.readBigUInt64LE(O.timeCount));
  const bodyLength = n * INDEX_RUN.entryBytes + m * INDEX_RUN.timeEntryBytes;
  if (b.length !== INDEX_RUN.lengthBytes + bodyLength) throw new ChronoError('BAD_LENGTH', 'index run: body length mismatch', context);
  const body = b.subarray(INDEX_RUN.lengthBytes);
  if (crc32c(body) !== b.readUInt32LE(O.bodyCrc)) throw new ChronoError('BAD_CHECKSUM', 'index run: body checksum mismatch', context);
  // Copy into fresh, aligned buffers: typed-array views need aligned offsets.
  let at = 0;
  const take = <T>(count: number, width: number, make: (ab: ArrayBuffer) => T): T => {
    const ab = new ArrayBuffer(count * width);
    new Uint8Array(ab).set(body.subarray(at, at + count * width));
    at += count * width;
    return make(ab);
  };
  return {
    blocks: take(n, 8, (ab) => new Float64Array(ab)),
    seqs: take(n, 8, (ab) => new Float64Array(ab)),
    segs: take(n, 4, (ab) => new Uint32Array(ab)),
    offs: take(n, 4, (ab) => new Uint32Array(ab)),
    times: take(m, 8, (ab) => new Float64Array(ab)),
    timeSeqs: take(m, 8, (ab) => new Float64Array(ab)),
    firstSeq: Number(b.readBigUInt64LE(O.firstSeq)),
    lastSeq: Number(b.readBigUInt64LE(O.lastSeq)),
  };
}
