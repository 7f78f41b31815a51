import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { ChronoError, ioError } from '../errors';
import { FILE_NAMES } from '../format/constants';
import { Point } from '../volume/events';
import { Volume } from '../volume/volume';
import { CloneMap } from './clone-map';

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

  private constructor(private readonly volume: Volume, readonly base: Point, private readonly dataFd: number, private readonly dataPath: string, private readonly map: CloneMap) {}

  static open(volume: Volume, dir: string, base: Point): CloneOverlay {
    const bs = volume.blockSizeBytes;
    const map = CloneMap.open(path.join(dir, FILE_NAMES.cloneMap), { volumeId: Buffer.from(volume.volumeId, 'hex'), blockSizeBytes: bs, blockCount: Math.ceil(volume.sizeBytes / bs) });
    const dataPath = path.join(dir, FILE_NAMES.cloneData);
    try {
      return new CloneOverlay(volume, base, fs.openSync(dataPath, 'r+'), dataPath, map);
    } catch (err) {
      map.close();
      throw ioError('open', dataPath, err);
    }
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
    for (let b = first; b < end; ) {
      const inOverlay = this.map.has(b);
      let e = b + 1;
      while (e < end && this.map.has(e) === inOverlay) e++;
      const at = (b - first) * bs;
      const len = (e - b) * bs;
      if (inOverlay) this.readData(out, at, len, b * bs);
      else {
        const p = this.volume.readIntoNow(out.subarray(at, at + len), b * bs, len, this.base);
        if (p) pending.push(p);
      }
      b = e;
    }
    return pending.length ? Promise.all(pending).then(() => undefined) : undefined;
  }

  /** Writes `data` at `offset`; done when it returns undefined (an aligned write with nothing queued). */
  write(offset: number, data: Buffer): Promise<void> | undefined {
    this.check(offset, data.length);
    const bs = this.volume.blockSizeBytes;
    if (this.queued === 0 && offset % bs === 0 && data.length % bs === 0) {
      this.writeBlocks(offset, data);
      return undefined;
    }
    return this.enqueue(async () => {
      const first = Math.floor(offset / bs);
      const end = Math.ceil((offset + data.length) / bs);
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

  /** Makes every write acknowledged so far durable: data first, then the map that points at it. */
  sync(): Promise<void> {
    return this.enqueue(async () => {
      try {
        await fdatasync(this.dataFd);
      } catch (err) {
        throw ioError('fdatasync', this.dataPath, err);
      }
      await this.map.persist();
    });
  }

  /** Syncs, then closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.sync();
    } finally {
      this.closed = true;
      await this.queue;
      fs.closeSync(this.dataFd);
      this.map.close();
    }
  }

  private writeBlocks(offset: number, data: Buffer): void {
    const bs = this.volume.blockSizeBytes;
    try {
      for (let done = 0; done < data.length; ) done += fs.writeSync(this.dataFd, data, done, data.length - done, offset + done);
    } catch (err) {
      throw ioError('write', this.dataPath, err);
    }
    this.map.mark(offset / bs, data.length / bs);
  }

  private readData(out: Buffer, at: number, length: number, fileOffset: number): void {
    try {
      for (let done = 0; done < length; ) {
        const n = fs.readSync(this.dataFd, out, at + done, length - done, fileOffset + done);
        if (n === 0) throw new ChronoError('IO', `${this.dataPath}: short read at ${fileOffset + done}: a block the map holds is missing`);
        done += n;
      }
    } catch (err) {
      throw ioError('read', this.dataPath, err);
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
