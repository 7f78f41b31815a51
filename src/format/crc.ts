import { crc32c as nodeRsCrc32c } from '@node-rs/crc32';
import { nativeAddon, nativeEnabled } from '../util/native-addon';

/**
 * CRC32C (Castagnoli) and the per-block unit codec (crc32c u32 LE, then the data), which every
 * write and every read of block data goes through.
 *
 * The native addon (native/crc32c.c, built by scripts/setup) runs the SSE4.2 instruction on three
 * streams and is 3-4x faster than @node-rs/crc32; without it (not built, or a CPU without SSE4.2)
 * the same functions fall back to @node-rs/crc32 with identical results.
 */
export interface CrcCodec {
  name: string;
  crc32c(buf: Uint8Array, initial: number): number;
  /** Writes `count` blocks from src as units (crc, data) into dst. */
  packUnits(src: Uint8Array, srcOffset: number, blockSizeBytes: number, count: number, dst: Uint8Array, dstOffset: number): void;
  /**
   * Checks `count` units from src and copies their data into dst. Returns -1 when all are good,
   * else the index of the first unit whose data fails its CRC (the units before it are copied).
   */
  unpackUnits(src: Uint8Array, srcOffset: number, blockSizeBytes: number, count: number, dst: Uint8Array, dstOffset: number): number;
  /** unpackUnits without copying: -1 when all `count` units are good, else the first bad one. */
  checkUnits(src: Uint8Array, srcOffset: number, blockSizeBytes: number, count: number): number;
}

function checkRange(srcEnd: number, srcLength: number, dstEnd: number, dstLength: number): void {
  if (srcEnd > srcLength || dstEnd > dstLength) throw new RangeError('units out of range');
}

/** The first unit whose data fails its CRC, or -1; the good units' data is copied to dst if given. */
function firstBadUnit(src: Uint8Array, so: number, bs: number, count: number, dst?: Uint8Array, dof = 0): number {
  const view = Buffer.from(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < count; i++) {
    const at = so + i * (bs + 4);
    const data = view.subarray(at + 4, at + 4 + bs);
    if (nodeRsCrc32c(data, 0) >>> 0 !== view.readUInt32LE(at)) return i;
    dst?.set(data, dof + i * bs);
  }
  return -1;
}

export const fallbackCodec: CrcCodec = {
  name: 'node-rs',
  crc32c: (buf, initial) => nodeRsCrc32c(buf as Buffer, initial) >>> 0,
  packUnits(src, so, bs, count, dst, dof) {
    checkRange(so + count * bs, src.length, dof + count * (bs + 4), dst.length);
    const view = Buffer.from(dst.buffer, dst.byteOffset, dst.length);
    for (let i = 0; i < count; i++) {
      const block = src.subarray(so + i * bs, so + (i + 1) * bs);
      view.writeUInt32LE(nodeRsCrc32c(block as Buffer, 0) >>> 0, dof + i * (bs + 4));
      dst.set(block, dof + i * (bs + 4) + 4);
    }
  },
  unpackUnits(src, so, bs, count, dst, dof) {
    checkRange(so + count * (bs + 4), src.length, dof + count * bs, dst.length);
    return firstBadUnit(src, so, bs, count, dst, dof);
  },
  checkUnits(src, so, bs, count) {
    checkRange(so + count * (bs + 4), src.length, 0, 0);
    return firstBadUnit(src, so, bs, count);
  },
};

function nativeCrc(): CrcCodec | undefined {
  const m = nativeAddon;
  if (!m.crc32c || !m.packUnits || !m.unpackUnits || !m.checkUnits) return undefined;
  return { name: 'native-sse42', crc32c: m.crc32c, packUnits: m.packUnits, unpackUnits: m.unpackUnits, checkUnits: m.checkUnits };
}

/** The addon, if it is built and this CPU has SSE4.2. */
export const nativeCodec = nativeCrc();

const active = (nativeEnabled && nativeCodec) || fallbackCodec;

/** Which implementation is in use: shown by `status` and the benchmarks. */
export const crcEngine = active.name;

/** CRC32C of `buf`, optionally continuing from `initial`. */
export const crc32c = (buf: Uint8Array, initial = 0): number => active.crc32c(buf, initial);
export const packUnits = active.packUnits;
export const unpackUnits = active.unpackUnits;
export const checkUnits = active.checkUnits;
