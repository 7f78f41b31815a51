import { RecordType } from '../format/constants';
import { HEADER_BYTES, unitBytes } from '../format/record';
import { DEFAULTS } from '../options';
import { Core } from './core';
import { LIVE_SEQ } from './events';
import { ensureSpace, reserveRollovers } from './turnover';

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

  async write(offset: number, data: Buffer): Promise<void> {
    if (data.length === 0) return;
    const { first, blocks } = await this.aligned(offset, data);
    const bs = this.core.sb.blockSizeBytes;
    const runs = this.runs(blocks);
    await reserveRollovers(this.core, this.recordBytes(runs));
    for (const r of runs) {
      if (r.zero) await this.appendZero(first + r.start, r.count, RecordType.ZERO);
      else await this.appendData(first + r.start, blocks, r.start * bs, r.count);
    }
  }

  /**
   * The whole write at once, without a promise, when nothing needs waiting for: whole blocks,
   * room in the current segment for every record, and write-behind within its bound. False,
   * with nothing appended, otherwise: use write(). The FUSE and NBD edges answer at once then.
   */
  tryWriteSync(offset: number, data: Buffer): boolean {
    const core = this.core;
    const bs = core.sb.blockSizeBytes;
    if (data.length === 0 || offset % bs !== 0 || data.length % bs !== 0) return false;
    const runs = this.runs(data);
    const bytes = this.recordBytes(runs);
    const current = core.segments.current;
    if (current.remaining() < bytes || current.pendingBytes + bytes > DEFAULTS.writeBehindBytes) return false;
    const first = offset / bs;
    for (const r of runs) {
      const step = r.zero ? this.maxZeroBlocks : core.maxBlocksPerRecord;
      for (let done = 0; done < r.count; done += step) {
        const n = Math.min(r.count - done, step);
        if (r.zero) this.appendZeroRecord(first + r.start + done, n, RecordType.ZERO);
        else this.appendDataRecord(first + r.start + done, data, (r.start + done) * bs, n);
      }
    }
    this.mustWait(); // for its checkpoint request; the bound was checked above
    return true;
  }

  /** The log bytes the records of these runs take. */
  private recordBytes(runs: { count: number; zero: boolean }[]): number {
    const core = this.core;
    let bytes = 0;
    for (const r of runs) bytes += r.zero ? HEADER_BYTES * Math.ceil(r.count / this.maxZeroBlocks) : HEADER_BYTES * Math.ceil(r.count / core.maxBlocksPerRecord) + r.count * unitBytes(core.sb.blockSizeBytes);
    return bytes;
  }

  /** Runs of consecutive all-zero or not-all-zero blocks: zero runs become data-less records. */
  private runs(blocks: Buffer): { start: number; count: number; zero: boolean }[] {
    const count = blocks.length / this.core.sb.blockSizeBytes;
    const out: { start: number; count: number; zero: boolean }[] = [];
    let runStart = 0;
    let runZero = this.isZero(blocks, 0);
    for (let i = 1; i <= count; i++) {
      const zero = i < count && this.isZero(blocks, i);
      if (i === count || zero !== runZero) {
        out.push({ start: runStart, count: i - runStart, zero: runZero });
        runStart = i;
        runZero = zero;
      }
    }
    return out;
  }

  async zero(offset: number, length: number, type: ZeroType): Promise<void> {
    const bs = this.core.sb.blockSizeBytes;
    const firstFull = Math.ceil(offset / bs);
    const endFull = Math.floor((offset + length) / bs);
    if (endFull <= firstFull) return this.write(offset, Buffer.alloc(length));
    if (offset < firstFull * bs) await this.write(offset, Buffer.alloc(firstFull * bs - offset));
    await reserveRollovers(this.core, this.recordBytes([{ count: endFull - firstFull, zero: true }]));
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
    const at = i * bs;
    // Most blocks with data show it in their first or last bytes: no call into C++ for those.
    if (blocks[at] | blocks[at + 1] | blocks[at + 2] | blocks[at + 3] | blocks[at + bs - 1]) return false;
    return this.zeroBlock.compare(blocks, at, at + bs) === 0;
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

  /** Zero records are data-less; bounded all the same, so copy-forward of any record fits in one segment. */
  private get maxZeroBlocks(): number {
    return this.core.maxBlocksPerRecord * 64;
  }

  private async appendData(firstBlock: number, buf: Buffer, bufOffset: number, count: number): Promise<void> {
    const core = this.core;
    const unit = unitBytes(core.sb.blockSizeBytes);
    for (let done = 0; done < count; ) {
      const n = Math.min(count - done, core.maxBlocksPerRecord);
      await ensureSpace(core, HEADER_BYTES + n * unit);
      this.appendDataRecord(firstBlock + done, buf, bufOffset + done * core.sb.blockSizeBytes, n);
      if (this.mustWait()) await core.segments.current.backpressure(DEFAULTS.writeBehindBytes);
      done += n;
    }
  }

  private async appendZero(firstBlock: number, count: number, type: ZeroType): Promise<void> {
    const core = this.core;
    for (let done = 0; done < count; ) {
      const n = Math.min(count - done, this.maxZeroBlocks);
      await ensureSpace(core, HEADER_BYTES);
      this.appendZeroRecord(firstBlock + done, n, type);
      if (this.mustWait()) await core.segments.current.backpressure(DEFAULTS.writeBehindBytes);
      done += n;
    }
  }

  /** One WRITE record; the caller has made room for it. */
  private appendDataRecord(firstBlock: number, buf: Buffer, bufOffset: number, count: number): void {
    this.core.volumeLog.appendWrite(firstBlock, count, buf, bufOffset);
  }

  /** One ZERO or TRIM record; the caller has made room for it. */
  private appendZeroRecord(firstBlock: number, count: number, type: ZeroType): void {
    this.core.volumeLog.appendZero(firstBlock, count, type);
  }
}
