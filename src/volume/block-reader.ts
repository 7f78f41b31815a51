import { ArchiveReader } from '../archive/archive-reader';
import { ChronoError } from '../errors';
import { crc32c } from '../format/crc';
import { unitBytes } from '../format/record';
import { Location, VersionIndex } from '../index/version-index';
import { SegmentSet } from '../segment/segment-set';
import { BlockCache, CacheStats } from './block-cache';

export type { CacheStats } from './block-cache';

interface Pending {
  i: number;
  block: number;
  version: Location;
  at: Location;
}

/**
 * Reconstructs blocks at a point in time. Every block is checked against its CRC before it is
 * served; damage fails the read with CORRUPT_BLOCK. Reconstructed blocks are cached by version
 * (its origin location), so one version read through many events is cached once.
 */
export class BlockReader {
  private readonly cache?: BlockCache;
  private readonly unit: number;
  /** Reused for primary reads: they complete within one tick, so one buffer serves them all. */
  private scratch = Buffer.allocUnsafe(0);

  constructor(
    private readonly index: VersionIndex,
    private readonly segments: SegmentSet,
    private readonly archive: ArchiveReader | undefined,
    private readonly blockSizeBytes: number,
    private readonly cacheBytes: number,
  ) {
    this.unit = unitBytes(blockSizeBytes);
    if (cacheBytes >= blockSizeBytes) this.cache = new BlockCache(blockSizeBytes, cacheBytes);
  }

  stats(): CacheStats {
    return this.cache?.stats() ?? { hits: 0, misses: 0, entries: 0, bytes: 0, maxBytes: 0 };
  }

  /** Fills out[outOffset..] with `count` blocks starting at firstBlock, as of seqLimit. */
  async read(firstBlock: number, count: number, seqLimit: number, out: Buffer, outOffset: number): Promise<void> {
    const bs = this.blockSizeBytes;
    const primary: Pending[] = [];
    const archived: Pending[] = [];
    for (let i = 0; i < count; i++) {
      const block = firstBlock + i;
      const v = this.index.floor(block, seqLimit);
      if (!v || v.offset === 0) {
        out.fill(0, outOffset + i * bs, outOffset + (i + 1) * bs);
        continue;
      }
      if (this.cache?.get(cacheKey(v), out, outOffset + i * bs)) continue;
      const at = this.index.where(block, v);
      if (this.segments.has(at.segment)) primary.push({ i, block, version: v, at });
      else if (at !== v && this.segments.has(v.segment)) primary.push({ i, block, version: v, at: v });
      else archived.push({ i, block, version: v, at: v });
    }
    // Primary reads first, all in this tick: no await may let a turnover recycle a segment under us.
    for (const group of contiguous(primary, this.unit)) {
      const first = group[0];
      const len = group.length * this.unit;
      if (this.scratch.length < len) this.scratch = Buffer.allocUnsafe(Math.max(len, 256 * 1024));
      this.segments.readInto(first.at.segment, this.scratch, 0, len, first.at.offset);
      this.deliver(group, this.scratch, out, outOffset);
    }
    for (const group of contiguous(archived, this.unit)) {
      if (!this.archive) {
        throw new ChronoError('NO_ARCHIVE', `block ${group[0].block} lives only in the archive, which is not configured`, { block: group[0].block });
      }
      const first = group[0];
      const buf = await this.archive.read(first.at.segment, first.at.offset, group.length * this.unit);
      this.deliver(group, buf, out, outOffset);
    }
  }

  private deliver(group: Pending[], units: Buffer, out: Buffer, outOffset: number): void {
    const bs = this.blockSizeBytes;
    group.forEach((p, k) => {
      const data = units.subarray(k * this.unit + 4, (k + 1) * this.unit);
      if (crc32c(data) !== units.readUInt32LE(k * this.unit)) {
        throw new ChronoError('CORRUPT_BLOCK', `block ${p.block} (version seq ${p.version.seq}, segment ${p.at.segment} offset ${p.at.offset}) fails its checksum; refusing to return damaged data`, {
          block: p.block, seq: p.version.seq, segment: p.at.segment, offset: p.at.offset,
        });
      }
      data.copy(out, outOffset + p.i * bs);
      this.cache?.set(cacheKey(p.version), data);
    });
  }
}

/** The origin location names a version uniquely: segment ids < 2^21 keep this exact. */
function cacheKey(v: Location): number {
  return v.segment * 0x1_0000_0000 + v.offset;
}

/** Splits into runs of consecutive blocks stored back to back in one segment. */
function* contiguous(items: Pending[], unit: number): Generator<Pending[]> {
  let run: Pending[] = [];
  for (const p of items) {
    const last = run[run.length - 1];
    if (last && (p.i !== last.i + 1 || p.at.segment !== last.at.segment || p.at.offset !== last.at.offset + unit)) {
      yield run;
      run = [];
    }
    run.push(p);
  }
  if (run.length) yield run;
}
