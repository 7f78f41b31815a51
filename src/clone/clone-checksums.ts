import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { promisify } from 'node:util';
import { ChronoError, ioError } from '../errors';
import { CLONE_CRC, CloneCrcFlags } from '../format/constants';
import { crc32c } from '../format/crc';
import { PreludeSpec, newPrelude, sealPrelude } from '../format/header-check';
import { CloneGeometry, openCloneSideFile } from './clone-side-file';

const O = CLONE_CRC.off;
const SPEC: PreludeSpec = { what: 'clone checksums', magic: CLONE_CRC.magic, lengthBytes: CLONE_CRC.lengthBytes, crcOffset: O.crc, knownFlags: CloneCrcFlags.open };
const E = CLONE_CRC.entryBytes;
const pwrite = promisify(fs.write);
const fdatasync = promisify(fs.fdatasync);

export interface CloneCrcHeader {
  volumeId: Buffer;
  blockSizeBytes: number;
  blockCount: number;
  flags: number;
}

export function encodeCloneCrcHeader(h: CloneCrcHeader): Buffer {
  const b = newPrelude(SPEC);
  b.writeUInt32LE(h.flags, O.flags);
  h.volumeId.copy(b, O.volumeId, 0, 16);
  b.writeUInt32LE(h.blockSizeBytes, O.blockSizeBytes);
  b.writeBigUInt64LE(BigInt(h.blockCount), O.blockCount);
  return sealPrelude(b, SPEC);
}

export function crcFileBytes(blockCount: number): number {
  return CLONE_CRC.lengthBytes + E * blockCount;
}

/**
 * `overlay.crc`: the CRC32C of each block a clone's overlay holds, read from the file where
 * needed (never all in memory: 4 bytes a block). Entries of blocks written since the last sync
 * are kept in memory until `persist`, which the overlay calls after the data is durable and
 * before the map bits.
 */
export class CloneChecksums {
  private readonly pending = new Map<number, number>();

  private constructor(private readonly fd: number, private readonly path: string, private readonly header: CloneCrcHeader, readonly wasOpen: boolean) {}

  /** Opens it and marks it open, durably (cleared again by `markClosed`). */
  static open(path: string, expect: CloneGeometry): CloneChecksums {
    const readHead = (fd: number) => {
      const head = Buffer.alloc(CLONE_CRC.lengthBytes);
      fs.readSync(fd, head, 0, head.length, 0);
      return head;
    };
    return openCloneSideFile(path, SPEC, O, expect, readHead, (fd, head, geometry) => {
      const header: CloneCrcHeader = { ...geometry, flags: head.readUInt32LE(O.flags) };
      const size = fs.fstatSync(fd).size;
      if (size < crcFileBytes(header.blockCount)) throw new ChronoError('BAD_LENGTH', `${path}: clone checksums are ${size} bytes, expected ${crcFileBytes(header.blockCount)}`, { file: path });
      const c = new CloneChecksums(fd, path, header, (header.flags & CloneCrcFlags.open) !== 0);
      c.writeFlags(CloneCrcFlags.open);
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
    this.writeFlags(0);
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

/** Creates `overlay.crc` (header, entries all 0: sparse) and fsyncs it; the caller fsyncs the directory. */
export function createChecksumsFile(file: string, geometry: CloneGeometry, entries?: (fd: number) => void): void {
  try {
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      const head = encodeCloneCrcHeader({ ...geometry, flags: 0 });
      fs.writeSync(fd, head, 0, head.length, 0);
      fs.ftruncateSync(fd, crcFileBytes(geometry.blockCount));
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
