import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { ChronoError, ioError } from '../errors';
import { CLONE_MAP } from '../format/constants';
import { crc32c } from '../format/crc';
import { PreludeSpec, newPrelude, sealPrelude } from '../format/header-check';
import { CloneGeometry, openCloneSideFile } from './clone-side-file';

const O = CLONE_MAP.off;
const SPEC: PreludeSpec = { what: 'clone overlay map', magic: CLONE_MAP.magic, lengthBytes: CLONE_MAP.lengthBytes, crcOffset: O.crc };
const pwrite = promisify(fs.write);
const fdatasync = promisify(fs.fdatasync);

export interface CloneMapHeader {
  volumeId: Buffer;
  blockSizeBytes: number;
  blockCount: number;
}

export function encodeCloneMapHeader(h: CloneMapHeader): Buffer {
  const b = newPrelude(SPEC);
  h.volumeId.copy(b, O.volumeId, 0, 16);
  b.writeUInt32LE(h.blockSizeBytes, O.blockSizeBytes);
  b.writeBigUInt64LE(BigInt(h.blockCount), O.blockCount);
  return sealPrelude(b, SPEC);
}

/** The bitmap's length, and the map file's (header, bitmap, a CRC per bitmap page). */
export function bitmapBytes(blockCount: number): number {
  return Math.ceil(blockCount / 8);
}

export function mapPages(blockCount: number): number {
  return Math.ceil(bitmapBytes(blockCount) / CLONE_MAP.pageBytes);
}

export function mapFileBytes(blockCount: number): number {
  return CLONE_MAP.lengthBytes + bitmapBytes(blockCount) + 4 * mapPages(blockCount);
}

/** Blocks per bitmap page. */
export const BLOCKS_PER_PAGE = CLONE_MAP.pageBytes * 8;

/**
 * Which blocks a clone's overlay holds: the bitmap in memory, and the bits not yet on disk.
 * `persist` writes only the bytes that changed, after the caller made the data they point at
 * durable; bits only go from 0 to 1, so a torn write of a map byte cannot lose a durable bit.
 */
export class CloneMap {
  private dirtyLow = Infinity;
  private dirtyHigh = -1;
  private present: number;
  /** Pages whose stored CRC did not match at open (undefined: a map from before page CRCs). */
  readonly failedPages?: Set<number>;

  private constructor(private readonly fd: number, private readonly path: string, private readonly bits: Buffer, readonly header: CloneMapHeader, pageCrcs: Buffer | undefined) {
    let n = 0;
    for (const byte of bits) n += POPCOUNT[byte];
    this.present = n;
    if (pageCrcs) {
      this.failedPages = new Set();
      for (let p = 0; p * 4 < pageCrcs.length; p++) {
        const stored = pageCrcs.readUInt32LE(p * 4);
        const page = this.page(p);
        if (stored === 0 ? page.some((x) => x !== 0) : stored !== crc32c(page)) this.failedPages.add(p);
      }
    }
  }

  /** Has the file a page-CRC table (a map made since page CRCs exist, or adopted)? */
  get checked(): boolean {
    return this.failedPages !== undefined;
  }

  private page(p: number): Buffer {
    return this.bits.subarray(p * CLONE_MAP.pageBytes, Math.min(this.bits.length, (p + 1) * CLONE_MAP.pageBytes));
  }

  /** The page holding block `block`'s bit failed its CRC at open. */
  pageFailed(block: number): boolean {
    return this.failedPages !== undefined && this.failedPages.size > 0 && this.failedPages.has(Math.floor(block / BLOCKS_PER_PAGE));
  }

  /**
   * Sets page p's bits from `present` (a page torn by a crash: rebuilt from the CRC entries) and
   * rewrites it and its CRC at the next persist.
   */
  rebuildPage(p: number, present: (block: number) => boolean): void {
    const first = p * BLOCKS_PER_PAGE;
    const end = Math.min(this.header.blockCount, first + BLOCKS_PER_PAGE);
    const page = this.page(p);
    for (const byte of page) this.present -= POPCOUNT[byte];
    page.fill(0);
    for (let b = first; b < end; b++) if (present(b)) page[(b >> 3) - p * CLONE_MAP.pageBytes] |= 1 << (b & 7);
    for (const byte of page) this.present += POPCOUNT[byte];
    this.touch(p * CLONE_MAP.pageBytes);
    this.touch(p * CLONE_MAP.pageBytes + page.length - 1);
    this.failedPages?.delete(p);
  }

  /** Writes every page and its CRC at the next persist (a map adopted from before page CRCs). */
  adopt(): void {
    (this as { failedPages?: Set<number> }).failedPages = new Set();
    if (this.bits.length) {
      this.touch(0);
      this.touch(this.bits.length - 1);
    }
  }

  private touch(i: number): void {
    if (i < this.dirtyLow) this.dirtyLow = i;
    if (i > this.dirtyHigh) this.dirtyHigh = i;
  }

  static open(path: string, expect: CloneGeometry): CloneMap {
    return openCloneSideFile(path, SPEC, O, expect, (fd) => fs.readFileSync(fd), (fd, all, header) => {
      // The file is created at its full length (sparse); a shorter one was cut, and its bits are
      // lost. A map from before page CRCs ends at its bitmap: it has no page-CRC table (adopted
      // by the overlay, which then writes one).
      const bitsEnd = CLONE_MAP.lengthBytes + bitmapBytes(header.blockCount);
      if (all.length < bitsEnd) throw new ChronoError('BAD_LENGTH', `${path}: clone map is ${all.length} bytes, expected ${mapFileBytes(header.blockCount)}`, { file: path });
      const bits = Buffer.from(all.subarray(CLONE_MAP.lengthBytes, bitsEnd));
      const pageCrcs = all.length >= mapFileBytes(header.blockCount) ? Buffer.from(all.subarray(bitsEnd, bitsEnd + 4 * mapPages(header.blockCount))) : undefined;
      return new CloneMap(fd, path, bits, header, pageCrcs);
    });
  }

  get presentBlocks(): number {
    return this.present;
  }

  has(block: number): boolean {
    return (this.bits[block >> 3] & (1 << (block & 7))) !== 0;
  }

  /** The blocks present, as runs in block order; whole zero bytes of the bitmap are skipped. */
  extents(): Array<{ firstBlock: number; blockCount: number }> {
    const out: Array<{ firstBlock: number; blockCount: number }> = [];
    const count = this.header.blockCount;
    for (let i = 0; i < this.bits.length; i++) {
      if (this.bits[i] === 0) continue;
      for (let b = i * 8; b < Math.min(count, i * 8 + 8); b++) {
        if (!this.has(b)) continue;
        const last = out[out.length - 1];
        if (last && last.firstBlock + last.blockCount === b) last.blockCount++;
        else out.push({ firstBlock: b, blockCount: 1 });
      }
    }
    return out;
  }

  /** Marks blocks present in memory; they reach the disk at the next persist. */
  mark(first: number, count: number): void {
    for (let b = first; b < first + count; b++) {
      const i = b >> 3;
      const m = 1 << (b & 7);
      if (this.bits[i] & m) continue;
      this.bits[i] |= m;
      this.present++;
      this.touch(i);
    }
  }

  /**
   * Writes the changed bytes of the bitmap and the CRCs of their pages, and fdatasyncs them. Call
   * only once the data and its CRC entries are durable.
   */
  async persist(): Promise<void> {
    if (this.dirtyHigh < 0) return;
    const low = this.dirtyLow;
    const high = this.dirtyHigh;
    this.dirtyLow = Infinity;
    this.dirtyHigh = -1;
    try {
      // Copies: marks made while this write is in flight must not tear it. With page CRCs, whole
      // pages go, each with the CRC of exactly the bytes written.
      const PB = CLONE_MAP.pageBytes;
      const from = this.failedPages ? low - (low % PB) : low;
      const to = this.failedPages ? Math.min(this.bits.length, high - (high % PB) + PB) : high + 1;
      const slice = Buffer.from(this.bits.subarray(from, to));
      await pwrite(this.fd, slice, 0, slice.length, CLONE_MAP.lengthBytes + from);
      if (this.failedPages) {
        const pages = Math.ceil(slice.length / PB);
        const crcs = Buffer.alloc(4 * pages);
        for (let k = 0; k < pages; k++) crcs.writeUInt32LE(crc32c(slice.subarray(k * PB, (k + 1) * PB)), 4 * k);
        await pwrite(this.fd, crcs, 0, crcs.length, CLONE_MAP.lengthBytes + this.bits.length + 4 * (from / PB));
      }
      await fdatasync(this.fd);
    } catch (err) {
      this.dirtyLow = Math.min(this.dirtyLow, low);
      this.dirtyHigh = Math.max(this.dirtyHigh, high);
      throw ioError('persist', this.path, err);
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let v = i; v; v >>= 1) n += v & 1;
  return n;
});
