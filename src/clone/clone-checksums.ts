import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { promisify } from 'node:util';
import { ChronoError, ioError } from '../errors';
import { CLONE_CRC, CloneCrcFlags } from '../format/constants';
import { crc32c } from '../format/crc';
import { PreludeSpec, newPrelude, sealPrelude } from '../format/header-check';
import { CloneGeometry, openCloneSideFile } from './clone-side-file';

const O = CLONE_CRC.off;
const SPEC: PreludeSpec = { what: 'clone checksums', magic: CLONE_CRC.magic, lengthBytes: CLONE_CRC.lengthBytes, crcOffset: O.crc, knownFlags: CloneCrcFlags.open | CloneCrcFlags.marks };
const E = CLONE_CRC.entryBytes;
const pwrite = promisify(fs.write);
const fdatasync = promisify(fs.fdatasync);

export interface CloneCrcHeader {
  volumeId: Buffer;
  blockSizeBytes: number;
  blockCount: number;
  flags: number;
  /** Blocks per region mark (0 in a file from before the marks). */
  markRegionBlocks: number;
}

export function encodeCloneCrcHeader(h: CloneCrcHeader): Buffer {
  const b = newPrelude(SPEC);
  b.writeUInt32LE(h.flags, O.flags);
  h.volumeId.copy(b, O.volumeId, 0, 16);
  b.writeUInt32LE(h.blockSizeBytes, O.blockSizeBytes);
  b.writeBigUInt64LE(BigInt(h.blockCount), O.blockCount);
  b.writeUInt32LE(h.markRegionBlocks, O.markRegionBlocks);
  return sealPrelude(b, SPEC);
}

/** Where the entries end (and the region marks begin). */
export function crcFileBytes(blockCount: number): number {
  return CLONE_CRC.lengthBytes + E * blockCount;
}

/** The region marks' length: one bit per region of `regionBlocks` blocks. */
export function marksBytes(blockCount: number, regionBlocks: number): number {
  return Math.ceil(Math.ceil(blockCount / regionBlocks) / 8);
}

/**
 * `overlay.crc`: the CRC32C of each block a clone's overlay holds, read from the file where
 * needed (never all in memory: 4 bytes a block). Entries of blocks written since the last sync
 * are kept in memory until `persist`, which the overlay calls after the data is durable and
 * before the map bits. Then the region marks (in memory too: a bit per region): a region is
 * marked, durably, before the first in-place overwrite in it after a sync, and cleared once that
 * overwrite's data and CRC are durable; after a crash only a marked region's blocks may differ
 * from their entries without being damaged.
 */
export class CloneChecksums {
  private readonly pending = new Map<number, number>();
  /** Bytes of `marks` with a bit set since the last clear (as found at open, after a crash). */
  private marksLow = Infinity;
  private marksHigh = -1;
  /** Regions overwritten since the last sync (memory only): their marks outlive that sync. */
  private readonly hot: Buffer;

  private constructor(private readonly fd: number, private readonly path: string, private readonly header: CloneCrcHeader, readonly wasOpen: boolean, private readonly marks: Buffer, readonly adoptedMarks: boolean) {
    this.hot = Buffer.alloc(marks.length);
    for (let i = 0; i < marks.length; i++) {
      if (marks[i] === 0) continue;
      this.marksLow = Math.min(this.marksLow, i);
      this.marksHigh = i;
    }
  }

  /** Opens it and marks it open, durably (cleared again by `markClosed`). */
  static open(path: string, expect: CloneGeometry): CloneChecksums {
    const readHead = (fd: number) => {
      const head = Buffer.alloc(CLONE_CRC.lengthBytes);
      fs.readSync(fd, head, 0, head.length, 0);
      return head;
    };
    return openCloneSideFile(path, SPEC, O, expect, readHead, (fd, head, geometry) => {
      const header: CloneCrcHeader = { ...geometry, flags: head.readUInt32LE(O.flags), markRegionBlocks: head.readUInt32LE(O.markRegionBlocks) };
      const wasOpen = (header.flags & CloneCrcFlags.open) !== 0;
      const size = fs.fstatSync(fd).size;
      const entriesEnd = crcFileBytes(header.blockCount);
      let marks: Buffer;
      let adopted = false;
      if (header.flags & CloneCrcFlags.marks) {
        if (header.markRegionBlocks < 1) throw new ChronoError('BAD_LENGTH', `${path}: clone checksums with region marks of 0 blocks`, { file: path });
        const want = entriesEnd + marksBytes(header.blockCount, header.markRegionBlocks);
        if (size < want) throw new ChronoError('BAD_LENGTH', `${path}: clone checksums are ${size} bytes, expected ${want}`, { file: path });
        marks = Buffer.alloc(want - entriesEnd);
        readFully(fd, path, marks, entriesEnd);
      } else {
        if (size < entriesEnd) throw new ChronoError('BAD_LENGTH', `${path}: clone checksums are ${size} bytes, expected ${entriesEnd}`, { file: path });
        // A file from before the region marks: they are added (durably, before the flag that
        // says they are kept). Left open by its last process, every region is marked: which
        // blocks that process overwrote is not known, so all are taken as found, as then.
        header.markRegionBlocks = CLONE_CRC.markRegionBlocks;
        marks = Buffer.alloc(marksBytes(header.blockCount, header.markRegionBlocks), wasOpen ? 0xff : 0);
        try {
          fs.ftruncateSync(fd, entriesEnd + marks.length);
          fs.writeSync(fd, marks, 0, marks.length, entriesEnd);
          fs.fdatasyncSync(fd);
        } catch (err) {
          throw ioError('write', path, err);
        }
        adopted = true;
      }
      const c = new CloneChecksums(fd, path, header, wasOpen, marks, adopted);
      c.writeFlags(CloneCrcFlags.open | CloneCrcFlags.marks);
      return c;
    });
  }

  /** The CRC entries of blocks first..first+count-1 (unsynced writes' included). */
  read(first: number, count: number): Uint32Array {
    const b = Buffer.alloc(count * E);
    try {
      for (let done = 0; done < b.length; ) {
        const n = fs.readSync(this.fd, b, done, b.length - done, CLONE_CRC.lengthBytes + first * E + done);
        if (n === 0) break;
        done += n;
      }
    } catch (err) {
      throw ioError('read', this.path, err);
    }
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.pending.get(first + i) ?? b.readUInt32LE(i * E);
    return out;
  }

  /** The region (of `markRegionBlocks` blocks) holding block b. */
  regionOf(block: number): number {
    return Math.floor(block / this.header.markRegionBlocks);
  }

  get regionBlocks(): number {
    return this.header.markRegionBlocks;
  }

  /** Region r is marked: its blocks may differ from their entries (overwritten, not yet synced). */
  isMarked(region: number): boolean {
    return (this.marks[region >> 3] & (1 << (region & 7))) !== 0;
  }

  /** How many regions the file marks. */
  get regionCount(): number {
    return Math.ceil(this.header.blockCount / this.header.markRegionBlocks);
  }

  /** Region r is overwritten in this sync interval: its mark stays set at the coming sync. */
  touch(region: number): void {
    this.hot[region >> 3] |= 1 << (region & 7);
  }

  /** Marks regions, durably (written and fdatasynced): call before their overwrites are written. */
  async mark(regions: number[]): Promise<void> {
    let low = Infinity;
    let high = -1;
    for (const r of regions) {
      this.marks[r >> 3] |= 1 << (r & 7);
      low = Math.min(low, r >> 3);
      high = Math.max(high, r >> 3);
    }
    if (high < 0) return;
    this.marksLow = Math.min(this.marksLow, low);
    this.marksHigh = Math.max(this.marksHigh, high);
    try {
      await pwrite(this.fd, Buffer.from(this.marks.subarray(low, high + 1)), 0, high + 1 - low, this.entriesEnd + low);
      await fdatasync(this.fd);
    } catch (err) {
      throw ioError('mark', this.path, err);
    }
  }

  /**
   * At a sync, once the data and CRC entries of every write so far are durable: clears the marks
   * of regions not overwritten since the last sync. Those overwritten keep theirs for one more
   * interval, so a region overwritten at every sync (a journal) pays its mark once, not per sync.
   * Not fdatasynced: a clear that a crash loses only leaves regions marked; the next mark,
   * persist or close makes it durable. `all`: clear every mark (the close).
   */
  async clearMarks(all = false): Promise<void> {
    if (all) this.hot.fill(0);
    if (this.marksHigh < 0) return;
    let low = Infinity;
    let high = -1;
    let keepLow = Infinity;
    let keepHigh = -1;
    for (let i = this.marksLow; i <= this.marksHigh; i++) {
      const kept = this.marks[i] & this.hot[i];
      if (kept !== this.marks[i]) {
        this.marks[i] = kept;
        low = Math.min(low, i);
        high = i;
      }
      if (kept) {
        keepLow = Math.min(keepLow, i);
        keepHigh = i;
      }
    }
    this.hot.fill(0);
    this.marksLow = keepLow;
    this.marksHigh = keepHigh;
    if (high < 0) return;
    try {
      await pwrite(this.fd, Buffer.from(this.marks.subarray(low, high + 1)), 0, high + 1 - low, this.entriesEnd + low);
    } catch (err) {
      throw ioError('write', this.path, err);
    }
  }

  private get entriesEnd(): number {
    return crcFileBytes(this.header.blockCount);
  }

  /** A block's new CRC, written at the next persist. */
  set(block: number, crc: number): void {
    this.pending.set(block, crc);
  }

  /** Writes the pending entries (runs of neighbours in one write each) and fdatasyncs them. */
  async persist(): Promise<void> {
    if (!this.pending.size) return;
    const all = [...this.pending].sort((a, b) => a[0] - b[0]);
    try {
      for (let i = 0; i < all.length; ) {
        let j = i + 1;
        while (j < all.length && all[j][0] === all[j - 1][0] + 1) j++;
        const b = Buffer.alloc((j - i) * E);
        for (let k = i; k < j; k++) b.writeUInt32LE(all[k][1], (k - i) * E);
        await pwrite(this.fd, b, 0, b.length, CLONE_CRC.lengthBytes + all[i][0] * E);
        i = j;
      }
      await fdatasync(this.fd);
    } catch (err) {
      throw ioError('persist', this.path, err);
    }
    // Only what was written: entries set meanwhile (a newer write of the block) stay pending.
    for (const [block, crc] of all) if (this.pending.get(block) === crc) this.pending.delete(block);
  }

  /** Clears the open flag, durably: the clone was closed after its last sync. */
  markClosed(): void {
    this.writeFlags(CloneCrcFlags.marks);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private writeFlags(flags: number): void {
    const head = encodeCloneCrcHeader({ ...this.header, flags });
    try {
      fs.writeSync(this.fd, head, 0, head.length, 0);
      fs.fdatasyncSync(this.fd);
    } catch (err) {
      throw ioError('write', this.path, err);
    }
  }
}

function readFully(fd: number, file: string, b: Buffer, at: number): void {
  try {
    for (let done = 0; done < b.length; ) {
      const n = fs.readSync(fd, b, done, b.length - done, at + done);
      if (n === 0) break;
      done += n;
    }
  } catch (err) {
    throw ioError('read', file, err);
  }
}

/** Creates `overlay.crc` (header, entries and marks all 0: sparse) and fsyncs it; the caller fsyncs the directory. */
export function createChecksumsFile(file: string, geometry: CloneGeometry, entries?: (fd: number) => void): void {
  try {
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      const regionBlocks = CLONE_CRC.markRegionBlocks;
      const head = encodeCloneCrcHeader({ ...geometry, flags: CloneCrcFlags.marks, markRegionBlocks: regionBlocks });
      fs.writeSync(fd, head, 0, head.length, 0);
      fs.ftruncateSync(fd, crcFileBytes(geometry.blockCount) + marksBytes(geometry.blockCount, regionBlocks));
      entries?.(fd);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw ioError('create', file, err);
  }
}

/**
 * A clone made before overlay.crc: its entries computed from the blocks its map holds, as found,
 * written under a temporary name, fsynced and renamed into place (then the directory fsynced).
 * Returns how many blocks were checksummed.
 */
export function adoptChecksums(file: string, geometry: CloneGeometry, extents: Array<{ firstBlock: number; blockCount: number }>, read: (first: number, count: number) => Buffer): number {
  const bs = geometry.blockSizeBytes;
  const tmp = `${file}.new`;
  fs.rmSync(tmp, { force: true });
  let blocks = 0;
  createChecksumsFile(tmp, geometry, (fd) => {
    for (const e of extents) {
      for (let b = e.firstBlock; b < e.firstBlock + e.blockCount; b += 256) {
        const n = Math.min(256, e.firstBlock + e.blockCount - b);
        const data = read(b, n);
        const out = Buffer.alloc(n * E);
        for (let i = 0; i < n; i++) out.writeUInt32LE(crc32c(data.subarray(i * bs, (i + 1) * bs)), i * E);
        fs.writeSync(fd, out, 0, out.length, CLONE_CRC.lengthBytes + b * E);
        blocks += n;
      }
    }
  });
  try {
    fs.renameSync(tmp, file);
    const dfd = fs.openSync(nodePath.dirname(file), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch (err) {
    throw ioError('rename', file, err);
  }
  return blocks;
}
