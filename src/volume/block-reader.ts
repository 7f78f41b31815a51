import { ArchiveReader } from '../archive/archive-reader';
import { ChronoError } from '../errors';
import { unpackUnits } from '../format/crc';
import { unitBytes } from '../format/record';
import { Location, RangeResult, VersionIndex, rangeResult } from '../index/version-index';
import { SegmentSet } from '../segment/segment-set';
import { BlockCache, CacheStats } from './block-cache';

export type { CacheStats } from './block-cache';

const READ_AHEAD_BYTES = 8 * 1024 * 1024;
/** Images whose read frontier is remembered, to tell scans from random reads. */
const TRACKED_IMAGES = 64;
/**
 * A read of at least this many bytes that lands within SCAN_WINDOW_BYTES of an image's frontier
 * continues a scan. A window, not an exact match: the kernel's read-ahead requests reach us from
 * several FUSE threads (and NBD clients pipeline), so a scan's requests arrive out of order.
 */
const SCAN_MIN_BYTES = 32 * 1024;
const SCAN_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * Reconstructs blocks at a point in time. Every block is checked against its CRC before it is
 * served; damage fails the read with CORRUPT_BLOCK. Reconstructed blocks are cached by version
 * (its origin location), so one version read through many events is cached once.
 *
 * The hot path allocates nothing per block: locations live in typed arrays, primary reads share
 * one scratch buffer, and a read that needs no archive completes synchronously.
 */
export class BlockReader {
  private readonly cache?: BlockCache;
  private readonly unit: number;
  private scratch = Buffer.allocUnsafe(256 * 1024);
  private range: RangeResult = rangeResult(64);
  /** Where each block of the current request is read from (segment/offset), set per request. */
  private atSeg = new Uint32Array(64);
  private atOff = new Uint32Array(64);
  /** Per point in time (seqLimit), the furthest block end a recent scan read reached. */
  private readonly frontier = new Map<number, number>();
  private readonly scanMinBlocks: number;
  private readonly scanWindowBlocks: number;

  constructor(
    private readonly index: VersionIndex,
    private readonly segments: SegmentSet,
    private readonly archive: ArchiveReader | undefined,
    private readonly blockSizeBytes: number,
    cacheBytes: number,
  ) {
    this.unit = unitBytes(blockSizeBytes);
    if (cacheBytes >= blockSizeBytes) this.cache = new BlockCache(blockSizeBytes, cacheBytes);
    this.scanMinBlocks = Math.max(2, SCAN_MIN_BYTES / blockSizeBytes);
    this.scanWindowBlocks = Math.max(1, SCAN_WINDOW_BYTES / blockSizeBytes);
  }

  stats(): CacheStats {
    return this.cache?.stats() ?? { hits: 0, misses: 0, entries: 0, bytes: 0, maxBytes: 0 };
  }

  /** Fills out[outOffset..] with `count` blocks starting at firstBlock, as of seqLimit. */
  read(firstBlock: number, count: number, seqLimit: number, out: Buffer, outOffset: number): Promise<void> {
    const archived = this.readPrimary(firstBlock, count, seqLimit, out, outOffset);
    return archived.length ? this.readArchived(archived, firstBlock, out, outOffset) : Promise.resolve();
  }

  /**
   * Everything that primary storage can answer, synchronously (in one tick, so no turnover can
   * recycle a segment between lookup and read). Returns the indexes of blocks that need the archive.
   */
  readPrimary(firstBlock: number, count: number, seqLimit: number, out: Buffer, outOffset: number): number[] {
    const bs = this.blockSizeBytes;
    if (this.range.found.length < count) {
      this.range = rangeResult(count);
      this.atSeg = new Uint32Array(count);
      this.atOff = new Uint32Array(count);
    }
    const r = this.range;
    this.index.floorRange(firstBlock, count, seqLimit, r);
    // A scan bypasses the cache: it would only evict what random readers need, and the kernel
    // and our read-ahead serve it anyway.
    const scan = this.isScan(firstBlock, count, seqLimit);
    const cache = scan ? undefined : this.cache;
    const archived: number[] = [];
    let runStart = -1;
    const flush = (end: number) => {
      if (runStart >= 0) this.readUnits(firstBlock, runStart, end, out, outOffset, cache, scan);
      runStart = -1;
    };
    for (let i = 0; i < count; i++) {
      if (r.found[i] !== 1 || r.offs[i] === 0) {
        flush(i);
        out.fill(0, outOffset + i * bs, outOffset + (i + 1) * bs);
        continue;
      }
      if (cache?.get(cacheKey(r.segs[i], r.offs[i]), out, outOffset + i * bs)) {
        flush(i);
        continue;
      }
      // Its forward copy if it has one in primary, else where it was written, if still in primary.
      const moved = this.index.reloc.get(firstBlock + i);
      let seg = r.segs[i];
      let off = r.offs[i];
      if (moved && moved.seq === r.seqs[i] && this.segments.has(moved.segment)) {
        seg = moved.segment;
        off = moved.offset;
      } else if (!this.segments.has(seg)) {
        flush(i);
        archived.push(i);
        continue;
      }
      this.atSeg[i] = seg;
      this.atOff[i] = off;
      // Extend the run while blocks sit back to back in one segment: one pread for all of them.
      if (runStart >= 0 && (seg !== this.atSeg[i - 1] || off !== this.atOff[i - 1] + this.unit)) flush(i);
      if (runStart < 0) runStart = i;
    }
    flush(count);
    return archived;
  }

  private isScan(firstBlock: number, count: number, seqLimit: number): boolean {
    const end = firstBlock + count;
    const f = this.frontier.get(seqLimit);
    const scan = count >= this.scanMinBlocks && f !== undefined && Math.abs(firstBlock - f) <= this.scanWindowBlocks;
    this.frontier.delete(seqLimit); // re-inserted last: the map's order is least recently read first
    this.frontier.set(seqLimit, scan ? Math.max(f!, end) : end);
    if (this.frontier.size > TRACKED_IMAGES) this.frontier.delete(this.frontier.keys().next().value!);
    return scan;
  }

  private readUnits(firstBlock: number, from: number, to: number, out: Buffer, outOffset: number, cache: BlockCache | undefined, scan: boolean): void {
    const len = (to - from) * this.unit;
    if (this.scratch.length < len) this.scratch = Buffer.allocUnsafe(len);
    this.segments.readInto(this.atSeg[from], this.scratch, 0, len, this.atOff[from]);
    // Scans go faster than one disk round trip per request: keep the segment file read ahead.
    if (scan) this.segments.readAhead(this.atSeg[from], this.atOff[from] + len, READ_AHEAD_BYTES);
    const r = this.range;
    const bad = unpackUnits(this.scratch, 0, this.blockSizeBytes, to - from, out, outOffset + from * this.blockSizeBytes);
    if (bad >= 0) throw corruptBlock(firstBlock + from + bad, r.seqs[from + bad], this.atSeg[from + bad], this.atOff[from + bad]);
    if (cache) {
      for (let i = from; i < to; i++) cache.set(cacheKey(r.segs[i], r.offs[i]), this.scratch.subarray((i - from) * this.unit + 4, (i - from + 1) * this.unit));
    }
  }

  private async readArchived(indexes: number[], firstBlock: number, out: Buffer, outOffset: number): Promise<void> {
    if (!this.archive) throw new ChronoError('NO_ARCHIVE', `block ${firstBlock + indexes[0]} lives only in the archive, which is not configured`);
    // Snapshot locations now: the shared arrays belong to whichever request runs next.
    const locs: Location[] = indexes.map((i) => ({ seq: this.range.seqs[i], segment: this.range.segs[i], offset: this.range.offs[i] }));
    for (let g = 0; g < indexes.length; ) {
      let n = 1;
      while (g + n < indexes.length && indexes[g + n] === indexes[g] + n && locs[g + n].segment === locs[g].segment && locs[g + n].offset === locs[g].offset + n * this.unit) n++;
      const units = await this.archive.read(locs[g].segment, locs[g].offset, n * this.unit);
      // The group is consecutive in the image too, so it unpacks in one call.
      const bad = unpackUnits(units, 0, this.blockSizeBytes, n, out, outOffset + indexes[g] * this.blockSizeBytes);
      if (bad >= 0) throw corruptBlock(firstBlock + indexes[g + bad], locs[g + bad].seq, locs[g + bad].segment, locs[g + bad].offset);
      // Archive reads are slow: always worth keeping.
      for (let k = 0; k < n; k++) this.cache?.set(cacheKey(locs[g + k].segment, locs[g + k].offset), units.subarray(k * this.unit + 4, (k + 1) * this.unit));
      g += n;
    }
  }
}

function corruptBlock(block: number, seq: number, segment: number, offset: number): ChronoError {
  return new ChronoError('CORRUPT_BLOCK', `block ${block} (version seq ${seq}, segment ${segment} offset ${offset}) fails its checksum; refusing to return damaged data`, { block, seq, segment, offset });
}

/** The origin location names a version uniquely: segment ids < 2^21 keep this exact. */
function cacheKey(segment: number, offset: number): number {
  return segment * 0x1_0000_0000 + offset;
}
