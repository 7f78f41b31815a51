import { RecordType } from '../format/constants';
import { HEADER_BYTES, RecordHeader, unitBytes } from '../format/record';
import { DEFAULTS } from '../options';
import { applyRecord } from './apply-record';
import { Core } from './core';
import { LIVE_SEQ } from './events';
import { ensureSpace } from './turnover';

type ZeroType = typeof RecordType.ZERO | typeof RecordType.TRIM;

/**
 * Turns byte-range writes into log records: partial blocks are read-modify-written, all-zero
 * blocks become data-less ZERO records, and long runs are split to fit records and segments.
 */
export class VolumeWriter {
  private readonly zeroBlock: Buffer;

  constructor(private readonly core: Core) {
    this.zeroBlock = Buffer.alloc(core.sb.blockSizeBytes);
  }

  /** Monotonic wall-clock milliseconds, so time lookups see a sorted log. */
  now(): number {
    this.core.lastTimeMs = Math.max(Date.now(), this.core.lastTimeMs);
    return this.core.lastTimeMs;
  }

  async write(offset: number, data: Buffer): Promise<void> {
    if (data.length === 0) return;
    const { first, blocks } = await this.aligned(offset, data);
    const bs = this.core.sb.blockSizeBytes;
    const count = blocks.length / bs;
    let runStart = 0;
    let runZero = this.isZero(blocks, 0);
    for (let i = 1; i <= count; i++) {
      const zero = i < count && this.isZero(blocks, i);
      if (i === count || zero !== runZero) {
        if (runZero) await this.appendZero(first + runStart, i - runStart, RecordType.ZERO);
        else await this.appendData(first + runStart, blocks, runStart * bs, i - runStart);
        runStart = i;
        runZero = zero;
      }
    }
  }

  async zero(offset: number, length: number, type: ZeroType): Promise<void> {
    const bs = this.core.sb.blockSizeBytes;
    const firstFull = Math.ceil(offset / bs);
    const endFull = Math.floor((offset + length) / bs);
    if (endFull <= firstFull) return this.write(offset, Buffer.alloc(length));
    if (offset < firstFull * bs) await this.write(offset, Buffer.alloc(firstFull * bs - offset));
    await this.appendZero(firstFull, endFull - firstFull, type);
    if (offset + length > endFull * bs) await this.write(endFull * bs, Buffer.alloc(offset + length - endFull * bs));
  }

  /**
   * Memory stays bounded: the memtable is checkpointed however long a segment takes to fill, and
   * appends wait while too many bytes are still on their way to the OS.
   */
  private mustWait(): boolean {
    const core = this.core;
    if (core.index.memtableCount >= DEFAULTS.memtableMaxVersions) core.checkpointer.request();
    return core.segments.current.pendingBytes > DEFAULTS.writeBehindBytes; // no await unless needed
  }

  private isZero(blocks: Buffer, i: number): boolean {
    const bs = this.core.sb.blockSizeBytes;
    return this.zeroBlock.compare(blocks, i * bs, (i + 1) * bs) === 0;
  }

  /** Whole blocks covering the range, with the edges filled in from the live volume. */
  private async aligned(offset: number, data: Buffer): Promise<{ first: number; blocks: Buffer }> {
    const bs = this.core.sb.blockSizeBytes;
    const first = Math.floor(offset / bs);
    const end = Math.ceil((offset + data.length) / bs);
    if (offset % bs === 0 && data.length % bs === 0) return { first, blocks: data };
    const blocks = Buffer.alloc((end - first) * bs);
    if (offset % bs !== 0) await this.core.reader.read(first, 1, LIVE_SEQ, blocks, 0);
    if ((offset + data.length) % bs !== 0 && (end - 1 > first || offset % bs === 0)) {
      await this.core.reader.read(end - 1, 1, LIVE_SEQ, blocks, (end - 1 - first) * bs);
    }
    data.copy(blocks, offset - first * bs);
    return { first, blocks };
  }

  private async appendData(firstBlock: number, buf: Buffer, bufOffset: number, count: number): Promise<void> {
    const core = this.core;
    const bs = core.sb.blockSizeBytes;
    const unit = unitBytes(bs);
    for (let done = 0; done < count; ) {
      const n = Math.min(count - done, core.maxBlocksPerRecord);
      await ensureSpace(core, HEADER_BYTES + n * unit);
      const h: RecordHeader = { type: RecordType.WRITE, blockCount: n, seq: core.nextSeq, timeMs: this.now(), firstBlock: firstBlock + done, payloadLength: n * unit, originSegment: 0, originOffset: 0 };
      const at = core.segments.current.appendBlocks(h, buf, bufOffset + done * bs, bs);
      applyRecord(core, core.segments.current.id, at, h);
      if (this.mustWait()) await this.core.segments.current.backpressure(DEFAULTS.writeBehindBytes);
      done += n;
    }
  }

  private async appendZero(firstBlock: number, count: number, type: ZeroType): Promise<void> {
    const core = this.core;
    // Bounded like data records, so copy-forward of any record fits in one segment.
    for (let done = 0; done < count; ) {
      const n = Math.min(count - done, core.maxBlocksPerRecord * 64);
      await ensureSpace(core, HEADER_BYTES);
      const h: RecordHeader = { type, blockCount: n, seq: core.nextSeq, timeMs: this.now(), firstBlock: firstBlock + done, payloadLength: 0, originSegment: 0, originOffset: 0 };
      const at = core.segments.current.append(h);
      applyRecord(core, core.segments.current.id, at, h);
      if (this.mustWait()) await this.core.segments.current.backpressure(DEFAULTS.writeBehindBytes);
      done += n;
    }
  }
}
