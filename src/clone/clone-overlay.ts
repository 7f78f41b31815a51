import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ChronoError, ioError } from '../errors';
import { FILE_NAMES } from '../format/constants';
import { crc32c } from '../format/crc';
import { Point } from '../volume/events';
import { DEFAULTS } from '../options';
import { Volume } from '../volume/volume';
import { CloneChecksums, adoptChecksums } from './clone-checksums';
import { BLOCKS_PER_PAGE, CloneMap } from './clone-map';

const fdatasync = promisify(fs.fdatasync);

/**
 * One clone's writable image: blocks written go to overlay.data at their own offset (a sparse
 * file), and overlay.map says which are there; every other block reads through to the base
 * point's image. Writes run one at a time (a partial block is read, merged and written whole),
 * and sync makes the data durable before the map bits that point at it.
 */
export class CloneOverlay {
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private closed = false;
  /** The close under way, from its first tick: writes are refused from then (see close). */
  private closing: Promise<void> | undefined;
  /** Where the last write ended (block): a write starting there is sequential. */
  private lastEnd = -1;

  private constructor(private readonly volume: Volume, readonly base: Point, private readonly dataFd: number, private readonly dataPath: string, private readonly map: CloneMap, private readonly sums: CloneChecksums) {}

  /**
   * Opens a clone's files. A clone from before overlay.crc is adopted first (its blocks' CRCs
   * computed from the data as found); one the last process did not close gets its torn map pages
   * rebuilt and its unsynced in-place overwrites re-checksummed (docs/FORMAT.md, "Clone checksums").
   */
  static open(volume: Volume, dir: string, base: Point): CloneOverlay {
    const bs = volume.blockSizeBytes;
    const geometry = { volumeId: Buffer.from(volume.volumeId, 'hex'), blockSizeBytes: bs, blockCount: Math.ceil(volume.sizeBytes / bs) };
    const map = CloneMap.open(path.join(dir, FILE_NAMES.cloneMap), geometry);
    const dataPath = path.join(dir, FILE_NAMES.cloneData);
    const crcPath = path.join(dir, FILE_NAMES.cloneCrc);
    let dataFd: number | undefined;
    let sums: CloneChecksums | undefined;
    try {
      try {
        dataFd = fs.openSync(dataPath, 'r+');
      } catch (err) {
        throw ioError('open', dataPath, err);
      }
      if (!fs.existsSync(crcPath)) {
        const adopted = adoptChecksums(crcPath, geometry, map.extents(), (first, count) => readBlocks(dataFd!, dataPath, first, count, bs));
        volume.logger.warn({ clone: path.basename(dir), blocks: adopted }, 'clone made before per-block checksums: adopted, its blocks checksummed as found');
      }
      sums = CloneChecksums.open(crcPath, geometry);
      if (!map.checked) map.adopt();
      const o = new CloneOverlay(volume, base, dataFd, dataPath, map, sums);
      if (sums.wasOpen) o.recover(path.basename(dir));
      return o;
    } catch (err) {
      sums?.close();
      if (dataFd !== undefined) fs.closeSync(dataFd);
      map.close();
      throw err;
    }
  }

  /**
   * After an unclean close: torn map pages rebuilt from the CRC entries; a block that differs
   * from its entry is taken as found only in a marked region (an overwrite in place not yet
   * synced: old, new or a mix). Elsewhere it is damage: its entry stays, and reads refuse it.
   */
  private recover(name: string): void {
    const pages = [...(this.map.failedPages ?? [])];
    for (const p of pages) {
      const first = p * BLOCKS_PER_PAGE;
      const entries = this.sums.read(first, Math.min(BLOCKS_PER_PAGE, this.map.header.blockCount - first));
      this.map.rebuildPage(p, (b) => entries[b - first] !== 0);
    }
    const bs = this.volume.blockSizeBytes;
    let rechecked = 0;
    let damaged = 0;
    for (const e of this.map.extents()) {
      for (let b = e.firstBlock; b < e.firstBlock + e.blockCount; b += 256) {
        const n = Math.min(256, e.firstBlock + e.blockCount - b);
        const data = readBlocks(this.dataFd, this.dataPath, b, n, bs);
        const want = this.sums.read(b, n);
        for (let i = 0; i < n; i++) {
          const crc = crc32c(data.subarray(i * bs, (i + 1) * bs));
          if (crc === want[i]) continue;
          if (this.sums.isMarked(this.sums.regionOf(b + i))) {
            this.sums.set(b + i, crc);
            rechecked++;
          } else damaged++;
        }
      }
    }
    if (pages.length || rechecked) this.volume.logger.warn({ clone: name, mapPagesRebuilt: pages.length, blocksRechecksummed: rechecked }, 'clone was not closed cleanly: torn map pages rebuilt from its checksums, blocks overwritten but not synced taken as found');
    if (damaged) this.volume.logger.error({ clone: name, blocksDamaged: damaged }, 'clone blocks synced before the crash fail their checksums: damage, refused on read (CORRUPT_BLOCK)');
  }

  get sizeBytes(): number {
    return this.volume.sizeBytes;
  }

  /** Bytes the overlay holds: the blocks written into the clone. */
  get overlayBytes(): number {
    return this.map.presentBlocks * this.volume.blockSizeBytes;
  }

  /** The blocks written into the clone, as runs (rollback's promote writes these, among others). */
  overlayExtents(): Array<{ firstBlock: number; blockCount: number }> {
    return this.map.extents();
  }

  /**
   * Reads into `out`: runs of blocks in the overlay from overlay.data, the rest from the base
   * point. Done when it returns undefined; otherwise the promise of the rest.
   */
  readInto(out: Buffer, offset: number, length: number): Promise<void> | undefined {
    this.check(offset, length);
    const bs = this.volume.blockSizeBytes;
    if (offset % bs !== 0 || length % bs !== 0) {
      const first = Math.floor(offset / bs);
      const end = Math.ceil((offset + length) / bs);
      const whole = Buffer.allocUnsafe((end - first) * bs);
      const copy = () => void whole.copy(out, 0, offset - first * bs, offset - first * bs + length);
      const p = this.readInto(whole, first * bs, whole.length);
      if (!p) return copy();
      return p.then(copy);
    }
    const pending: Promise<void>[] = [];
    const first = offset / bs;
    const end = first + length / bs;
    try {
      for (let b = first; b < end; ) {
        const inOverlay = this.inOverlay(b);
        let e = b + 1;
        while (e < end && this.inOverlay(e) === inOverlay) e++;
        const at = (b - first) * bs;
        const len = (e - b) * bs;
        if (inOverlay) this.readData(out, at, len, b * bs);
        else {
          const p = this.volume.readIntoNow(out.subarray(at, at + len), b * bs, len, this.base);
          if (p) pending.push(p);
        }
        b = e;
      }
    } catch (err) {
      // Damage (CORRUPT_BLOCK) is a rejected promise, as a failed base read is, once the reads
      // already begun into `out` have ended.
      return Promise.allSettled(pending).then(() => Promise.reject(err));
    }
    return pending.length ? Promise.all(pending).then(() => undefined) : undefined;
  }

  /** Writes `data` at `offset`; done when it returns undefined (an aligned write with nothing queued). */
  write(offset: number, data: Buffer): Promise<void> | undefined {
    this.check(offset, data.length);
    if (this.closing) throw new ChronoError('CLOSED', 'clone is closing (discarded, or the daemon stopping)');
    const bs = this.volume.blockSizeBytes;
    const first = Math.floor(offset / bs);
    const end = Math.ceil((offset + data.length) / bs);
    const sequential = first === this.lastEnd;
    this.lastEnd = end;
    if (this.queued === 0 && offset % bs === 0 && data.length % bs === 0 && this.regionsToMark(first, end).length === 0) {
      this.writeBlocks(offset, data);
      return undefined;
    }
    return this.enqueue(async () => {
      // DESIGN rule 12a: the regions this write overwrites in place are marked, durably, first
      // (a sequential overwrite also marks the regions ahead of it, in the same fdatasync).
      const regions = this.regionsToMark(first, end);
      if (regions.length && sequential) {
        const last = regions[regions.length - 1];
        for (let r = last + 1; r <= Math.min(this.sums.regionCount - 1, last + DEFAULTS.cloneMarkAheadRegions); r++) if (!this.sums.isMarked(r)) regions.push(r);
      }
      await this.sums.mark(regions);
      if (offset % bs === 0 && data.length % bs === 0) return this.writeBlocks(offset, data);
      // Read-merge-write of the partial blocks at either end, whole blocks into the overlay.
      const whole = Buffer.allocUnsafe((end - first) * bs);
      const head = this.readInto(whole.subarray(0, bs), first * bs, bs);
      if (head) await head;
      if (end - 1 > first) {
        const tail = this.readInto(whole.subarray(whole.length - bs), (end - 1) * bs, bs);
        if (tail) await tail;
      }
      data.copy(whole, offset - first * bs);
      this.writeBlocks(first * bs, whole);
    });
  }

  /**
   * Makes every write acknowledged so far durable: data first, then the CRC entries that check
   * it, then the map bits that point at it (each fdatasynced before the next: DESIGN rule 12).
   */
  sync(closing = false): Promise<void> {
    // A sync asked for during the close is the close's own: every write it could cover was let
    // in before the close began, and the close's sync covers them.
    if (this.closing && !closing) return this.closing;
    return this.enqueue(async () => {
      try {
        await fdatasync(this.dataFd);
      } catch (err) {
        throw ioError('fdatasync', this.dataPath, err);
      }
      await this.sums.persist();
      await this.map.persist();
      // Every write so far is durable and checked by its entry: regions not overwritten since the
      // last sync are in flux no more (those overwritten stay marked one more interval).
      await this.sums.clearMarks(closing);
    });
  }

  /**
   * Syncs, then closes the files. Writes are refused (CLOSED) from the call on, not only once the
   * files are closed: one let in behind the closing sync would land after markClosed, its CRC
   * entry never persisted, and the clone, marked closed cleanly, would refuse that acknowledged
   * block after the next open (CORRUPT_BLOCK). Writes queued before the call finish first.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (!this.closing) this.closing = this.closeFiles();
    return this.closing;
  }

  private async closeFiles(): Promise<void> {
    try {
      await this.sync(true);
      this.sums.markClosed();
    } finally {
      this.closed = true;
      await this.queue;
      fs.closeSync(this.dataFd);
      this.map.close();
      this.sums.close();
    }
  }

  /**
   * The regions where writing blocks first..end-1 overwrites a block in place: one the map holds
   * (synced, or written since: marking those too costs nothing more per region), or whose bit is
   * not to be trusted (its page failed its CRC). Each is noted as overwritten in this interval;
   * the unmarked ones are returned.
   */
  private regionsToMark(first: number, end: number): number[] {
    const out: number[] = [];
    const rb = this.sums.regionBlocks;
    for (let r = this.sums.regionOf(first); r * rb < end; r++) {
      for (let b = Math.max(first, r * rb); b < Math.min(end, (r + 1) * rb); b++) {
        if (this.map.has(b) || this.map.pageFailed(b)) {
          this.sums.touch(r);
          if (!this.sums.isMarked(r)) out.push(r);
          break;
        }
      }
    }
    return out;
  }

  private writeBlocks(offset: number, data: Buffer): void {
    const bs = this.volume.blockSizeBytes;
    try {
      for (let done = 0; done < data.length; ) done += fs.writeSync(this.dataFd, data, done, data.length - done, offset + done);
    } catch (err) {
      throw ioError('write', this.dataPath, err);
    }
    const first = offset / bs;
    const count = data.length / bs;
    // A map page that failed its CRC is rebuilt from the CRC entries before a bit of it is set:
    // its damage is never written back under a fresh CRC.
    for (let p = Math.floor(first / BLOCKS_PER_PAGE); p <= Math.floor((first + count - 1) / BLOCKS_PER_PAGE); p++) {
      if (!this.map.pageFailed(p * BLOCKS_PER_PAGE)) continue;
      const pageFirst = p * BLOCKS_PER_PAGE;
      const entries = this.sums.read(pageFirst, Math.min(BLOCKS_PER_PAGE, this.map.header.blockCount - pageFirst));
      this.map.rebuildPage(p, (b) => entries[b - pageFirst] !== 0);
    }
    for (let i = 0; i < count; i++) this.sums.set(first + i, crc32c(data.subarray(i * bs, (i + 1) * bs)));
    this.map.mark(first, count);
  }

  /**
   * Is block b in the overlay? Its map bit, unless its map page failed its CRC at open (damage:
   * the clone was closed cleanly); then the bit must agree with the block's CRC entry.
   */
  private inOverlay(b: number): boolean {
    const bit = this.map.has(b);
    if (!this.map.pageFailed(b)) return bit;
    const entry = this.sums.read(b, 1)[0];
    if (bit !== (entry !== 0)) {
      throw new ChronoError('CORRUPT_BLOCK', `clone block ${b}: its overlay.map page fails its checksum and its bit (${bit ? 1 : 0}) disagrees with overlay.crc; refusing to guess`, { block: b, file: this.dataPath });
    }
    return bit;
  }

  /** Reads blocks from overlay.data and checks each against its CRC entry. */
  private readData(out: Buffer, at: number, length: number, fileOffset: number): void {
    const bs = this.volume.blockSizeBytes;
    const first = fileOffset / bs;
    const count = length / bs;
    let done = 0;
    try {
      while (done < length) {
        const n = fs.readSync(this.dataFd, out, at + done, length - done, fileOffset + done);
        if (n === 0) break;
        done += n;
      }
    } catch (err) {
      throw ioError('read', this.dataPath, err);
    }
    const want = this.sums.read(first, count);
    for (let i = 0; i < count; i++) {
      if ((i + 1) * bs > done) throw corruptClone(first + i, this.dataPath, 'overlay.data does not hold it (short file)');
      if (crc32c(out.subarray(at + i * bs, at + (i + 1) * bs)) !== want[i]) throw corruptClone(first + i, this.dataPath, 'its data fails its checksum');
    }
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    this.queued++;
    const run = async (): Promise<T> => {
      try {
        return await op();
      } finally {
        this.queued--;
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private check(offset: number, length: number): void {
    if (this.closed) throw new ChronoError('CLOSED', 'clone is closed (discarded?)');
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) throw new ChronoError('BAD_ARGUMENT', `invalid offset/length ${offset}/${length}`);
    if (offset + length > this.volume.sizeBytes) throw new ChronoError('OUT_OF_RANGE', `range ${offset}+${length} runs past the end of the ${this.volume.sizeBytes}-byte clone`, { offset, length });
  }
}

function corruptClone(block: number, file: string, why: string): ChronoError {
  return new ChronoError('CORRUPT_BLOCK', `clone block ${block}: ${why}; refusing to return damaged data`, { block, file });
}

/** count blocks from overlay.data at block `first` (zeros past its end). */
function readBlocks(fd: number, file: string, first: number, count: number, bs: number): Buffer {
  const b = Buffer.alloc(count * bs);
  try {
    for (let done = 0; done < b.length; ) {
      const n = fs.readSync(fd, b, done, b.length - done, first * bs + done);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    throw ioError('read', file, err);
  }
  return b;
}
