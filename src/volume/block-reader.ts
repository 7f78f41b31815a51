import { ArchiveReader } from '../archive/archive-reader';
import { ChronoError } from '../errors';
import { DEFAULTS } from '../options';
import { unpackUnits } from '../format/crc';
import { unitBytes } from '../format/record';
import { Location, RangeResult, VersionIndex, rangeResult } from '../index/version-index';
import { NOT_CACHED, SegmentSet } from '../segment/segment-set';
import { BlockCache, CacheStats } from './block-cache';
import { ScanTracker } from './scan-tracker';

export type { CacheStats } from './block-cache';

/** Scan detection and read-ahead (see ScanTracker). */
const SCAN = { minBytes: 32 * 1024, windowBytes: 4 * 1024 * 1024, aheadBytes: 32 * 1024 * 1024, stepBytes: 4 * 1024 * 1024 };
/** A fragmented image's read-ahead: ranges merge across gaps this small, and calls are capped. */
const PREFETCH_GAP_BYTES = 256 * 1024;
const PREFETCH_CALLS_PER_STEP = 32;
/**
 * A scan through the archive looks this far ahead in the image (as far as the archive keeps 1 MiB
 * chunks in flight within an object) for the objects it will read, and has the next
 * ARCHIVE_AHEAD_CHUNKS chunks of each fetched (the archive's chunk cache is sized for it).
 */
const ARCHIVE_AHEAD_BLOCKS = (blockSizeBytes: number) => Math.floor((DEFAULTS.archiveReadsInFlight * 1024 * 1024) / blockSizeBytes);
const ARCHIVE_AHEAD_CHUNKS = DEFAULTS.archiveReadsInFlight / 2;
const ARCHIVE_AHEAD_OBJECTS_PER_READ = 2;
const ARCHIVE_AHEAD_REMEMBERED = 16;

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
  private readonly scans: ScanTracker;
  /** Locations of the blocks being read ahead (separate from the request's). */
  private aheadRange?: RangeResult;
  /** The archived segments scans were last sent ahead into, oldest first (archiveAhead). */
  private readonly archiveAheadSegs = new Set<number>();
  private archiveAheadLast: Promise<void> = Promise.resolve();
  /** The image (seqLimit) a scan was last sent ahead in, and from which block it is due again. */
  private archiveAheadImage = -1;
  private archiveAheadFrom = -1;
  /** Set by locate(): where a block's bytes are in primary storage. */
  private locSeg = 0;
  private locOff = 0;

  constructor(
    private readonly index: VersionIndex,
    private readonly segments: SegmentSet,
    private readonly archive: ArchiveReader | undefined,
    private readonly blockSizeBytes: number,
    cacheBytes: number,
  ) {
    this.unit = unitBytes(blockSizeBytes);
    if (cacheBytes >= blockSizeBytes) this.cache = new BlockCache(blockSizeBytes, cacheBytes);
    const blocks = (bytes: number) => Math.max(1, Math.floor(bytes / blockSizeBytes));
    this.scans = new ScanTracker(
      { minBlocks: Math.max(2, blocks(SCAN.minBytes)), windowBlocks: blocks(SCAN.windowBytes), aheadBlocks: blocks(SCAN.aheadBytes), stepBlocks: blocks(SCAN.stepBytes) },
      (first, count, seqLimit) => this.prefetch(first, count, seqLimit),
    );
  }

  stats(): CacheStats {
    return this.cache?.stats() ?? { hits: 0, misses: 0, entries: 0, bytes: 0, maxBytes: 0 };
  }

  /** Fills out[outOffset..] with `count` blocks starting at firstBlock, as of seqLimit. */
  read(firstBlock: number, count: number, seqLimit: number, out: Buffer, outOffset: number): Promise<void> {
    try {
      return this.readNow(firstBlock, count, seqLimit, out, outOffset) ?? Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * The same, done by the time it returns (undefined) when primary storage and the OS cache
   * hold every block; otherwise a promise that settles once every read into `out` has ended
   * (so the caller may hand the buffer on then, even after a failure). One lookup either way.
   */
  readNow(firstBlock: number, count: number, seqLimit: number, out: Buffer, outOffset: number): Promise<void> | undefined {
    const later: Promise<void>[] = [];
    let archived: number[];
    try {
      archived = this.readPrimary(firstBlock, count, seqLimit, out, outOffset, later);
    } catch (err) {
      if (!later.length) throw err;
      return settled(later).then(() => Promise.reject(err));
    }
    if (archived.length) later.push(this.readArchived(archived, firstBlock, out, outOffset));
    return later.length ? settled(later) : undefined;
  }

  /**
   * Everything that primary storage can answer, looked up in one tick (so no turnover can
   * recycle a segment between lookup and read). Returns the indexes of blocks that need the
   * archive. Bytes not in the OS cache yet are read on the threadpool, their promises pushed to
   * `later`.
   */
  private readPrimary(firstBlock: number, count: number, seqLimit: number, out: Buffer, outOffset: number, later: Promise<void>[]): number[] {
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
    const scan = this.scans.note(firstBlock, count, seqLimit);
    const cache = scan ? undefined : this.cache;
    const archived: number[] = [];
    let runStart = -1;
    const flush = (end: number) => {
      if (runStart >= 0) this.readUnits(firstBlock, runStart, end, out, outOffset, cache, later);
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
      if (!this.locate(firstBlock + i, r, i)) {
        flush(i);
        archived.push(i);
        continue;
      }
      const seg = this.locSeg;
      const off = this.locOff;
      this.atSeg[i] = seg;
      this.atOff[i] = off;
      // Extend the run while blocks sit back to back in one segment: one pread for all of them.
      if (runStart >= 0 && (seg !== this.atSeg[i - 1] || off !== this.atOff[i - 1] + this.unit)) flush(i);
      if (runStart < 0) runStart = i;
    }
    flush(count);
    if (scan && archived.length) this.archiveAhead(firstBlock + count, seqLimit);
    return archived;
  }

  /**
   * A scan reading the archive: the archived objects it will read next, within the archive's
   * read-ahead distance of the image, get their next chunks fetched now (ArchiveReader.prefetch),
   * each object once while it is among the last few sent ahead, and a few objects per call at
   * most (a fragmented image touches many, and the archive's chunk cache is small).
   */
  private archiveAhead(fromBlock: number, seqLimit: number): void {
    if (!this.archive) return;
    // Past the image's end nothing is found: the look-ahead just ends there.
    const count = ARCHIVE_AHEAD_BLOCKS(this.blockSizeBytes);
    // Once per MiB of the scan's progress, not per request: a FUSE scan asks 128 KiB at a time,
    // and each look-ahead is an index lookup of `count` blocks.
    const step = Math.max(1, Math.floor((1024 * 1024) / this.blockSizeBytes));
    const continuing = seqLimit === this.archiveAheadImage && fromBlock >= this.archiveAheadFrom - step && fromBlock <= this.archiveAheadFrom + count;
    if (continuing && fromBlock < this.archiveAheadFrom) return;
    // Another image, or a jump: a new scan, which must be sent into objects an earlier one was too.
    if (!continuing) this.archiveAheadSegs.clear();
    this.archiveAheadImage = seqLimit;
    this.archiveAheadFrom = fromBlock + step;
    if (!this.aheadRange || this.aheadRange.found.length < count) this.aheadRange = rangeResult(count);
    const r = this.aheadRange;
    this.index.floorRange(fromBlock, count, seqLimit, r);
    const sent: Promise<void>[] = [];
    for (let i = 0; i < count && sent.length < ARCHIVE_AHEAD_OBJECTS_PER_READ; i++) {
      if (r.found[i] !== 1 || r.offs[i] === 0 || this.archiveAheadSegs.has(r.segs[i]) || this.locate(fromBlock + i, r, i)) continue;
      this.archiveAheadSegs.add(r.segs[i]);
      if (this.archiveAheadSegs.size > ARCHIVE_AHEAD_REMEMBERED) this.archiveAheadSegs.delete(this.archiveAheadSegs.values().next().value!);
      sent.push(this.archive.prefetch(r.segs[i], r.offs[i], ARCHIVE_AHEAD_CHUNKS));
    }
    if (sent.length) this.archiveAheadLast = Promise.all(sent).then(() => undefined);
  }

  /** Settles once every object the last archive look-ahead sent ahead has asked for its chunks (for tests: white-box). */
  archiveAheadStarted(): Promise<void> {
    return this.archiveAheadLast;
  }

  /** Where block i of range r is in primary storage (locSeg/locOff); false if only in the archive. */
  private locate(block: number, r: RangeResult, i: number): boolean {
    // Its forward copy if it has one in primary, else where it was written, if still in primary.
    const moved = this.index.reloc.get(block);
    if (moved && moved.seq === r.seqs[i] && this.segments.has(moved.segment)) {
      this.locSeg = moved.segment;
      this.locOff = moved.offset;
      return true;
    }
    this.locSeg = r.segs[i];
    this.locOff = r.offs[i];
    return this.segments.has(this.locSeg);
  }

  /** Starts reading the segment bytes of these blocks into the page cache, a run at a time. */
  private prefetch(firstBlock: number, count: number, seqLimit: number): void {
    if (!this.aheadRange || this.aheadRange.found.length < count) this.aheadRange = rangeResult(count);
    const r = this.aheadRange;
    this.index.floorRange(firstBlock, count, seqLimit, r);
    let seg = -1;
    let start = 0;
    let end = 0;
    let calls = 0;
    for (let i = 0; i <= count && calls < PREFETCH_CALLS_PER_STEP; i++) {
      const here = i < count && r.found[i] === 1 && r.offs[i] !== 0 && this.locate(firstBlock + i, r, i);
      if (!here && i < count) continue;
      // Blocks a little apart in one segment share a range: reading the gap is cheaper than a call.
      if (here && this.locSeg === seg && this.locOff >= start && this.locOff <= end + PREFETCH_GAP_BYTES) {
        end = Math.max(end, this.locOff + this.unit);
        continue;
      }
      if (seg >= 0) {
        this.segments.prefetch(seg, start, end - start);
        calls++;
      }
      seg = this.locSeg;
      start = this.locOff;
      end = start + this.unit;
    }
  }

  /** One run of blocks back to back in one segment. */
  private readUnits(firstBlock: number, from: number, to: number, out: Buffer, outOffset: number, cache: BlockCache | undefined, later: Promise<void>[]): void {
    const bs = this.blockSizeBytes;
    const len = (to - from) * this.unit;
    if (this.scratch.length < len) this.scratch = Buffer.allocUnsafe(len);
    const r = this.range;
    const seg = this.atSeg[from];
    const off = this.atOff[from];
    const bad = this.segments.tryReadUnitsInto(seg, off, bs, to - from, out, outOffset + from * bs, this.scratch);
    if (bad === NOT_CACHED) {
      // Snapshot what the answer needs now: the shared arrays belong to whichever request runs next.
      const versions = Array.from({ length: to - from }, (_, k) => ({ seq: r.seqs[from + k], key: cacheKey(r.segs[from + k], r.offs[from + k]) }));
      later.push(this.segments.readUnitsLater(seg, off, bs, to - from, out, outOffset + from * bs).then((b) => {
        if (b >= 0) throw corruptBlock(firstBlock + from + b, versions[b].seq, seg, off + b * this.unit);
        if (cache) versions.forEach((v, k) => cache.set(v.key, out.subarray(outOffset + (from + k) * bs, outOffset + (from + k + 1) * bs)));
      }));
      return;
    }
    if (bad >= 0) throw corruptBlock(firstBlock + from + bad, r.seqs[from + bad], this.atSeg[from + bad], this.atOff[from + bad]);
    if (cache) {
      for (let i = from; i < to; i++) cache.set(cacheKey(r.segs[i], r.offs[i]), out.subarray(outOffset + i * bs, outOffset + (i + 1) * bs));
    }
  }

  private async readArchived(indexes: number[], firstBlock: number, out: Buffer, outOffset: number): Promise<void> {
    if (!this.archive) throw new ChronoError('NO_ARCHIVE', `block ${firstBlock + indexes[0]} lives only in the archive, which is not configured`);
    // Snapshot locations now: the shared arrays belong to whichever request runs next.
    const locs: Location[] = indexes.map((i) => ({ seq: this.range.seqs[i], segment: this.range.segs[i], offset: this.range.offs[i] }));
    for (let g = 0; g < indexes.length; ) {
      let n = 1;
      while (g + n < indexes.length && indexes[g + n] === indexes[g] + n && locs[g + n].segment === locs[g].segment && locs[g + n].offset === locs[g].offset + n * this.unit && locs[g + n].seq === locs[g].seq) n++;
      // The index's version goes along: the archive checks the record it lands in holds it.
      const units = await this.archive.read(locs[g].segment, locs[g].offset, n * this.unit, { block: firstBlock + indexes[g], seq: locs[g].seq, unitBytes: this.unit });
      // The group is consecutive in the image too, so it unpacks in one call.
      const bad = unpackUnits(units, 0, this.blockSizeBytes, n, out, outOffset + indexes[g] * this.blockSizeBytes);
      if (bad >= 0) throw corruptBlock(firstBlock + indexes[g + bad], locs[g + bad].seq, locs[g + bad].segment, locs[g + bad].offset);
      // Archive reads are slow: always worth keeping.
      for (let k = 0; k < n; k++) this.cache?.set(cacheKey(locs[g + k].segment, locs[g + k].offset), units.subarray(k * this.unit + 4, (k + 1) * this.unit));
      g += n;
    }
  }
}

/** Waits for every promise, then rejects with the first failure, if any. */
async function settled(all: Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(all)).find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failed) throw failed.reason;
}

function corruptBlock(block: number, seq: number, segment: number, offset: number): ChronoError {
  return new ChronoError('CORRUPT_BLOCK', `block ${block} (version seq ${seq}, segment ${segment} offset ${offset}) fails its checksum; refusing to return damaged data`, { block, seq, segment, offset });
}

/** The origin location names a version uniquely: segment ids < 2^21 keep this exact. */
function cacheKey(segment: number, offset: number): number {
  return segment * 0x1_0000_0000 + offset;
}
