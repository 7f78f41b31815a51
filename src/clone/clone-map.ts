import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { ChronoError, ioError } from '../errors';
import { CLONE_MAP } from '../format/constants';
import { PreludeSpec, checkPrelude, newPrelude, sealPrelude } from '../format/header-check';

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

export function mapFileBytes(blockCount: number): number {
  return CLONE_MAP.lengthBytes + Math.ceil(blockCount / 8);
}

/**
 * Which blocks a clone's overlay holds: the bitmap in memory, and the bits not yet on disk.
 * `persist` writes only the bytes that changed, after the caller made the data they point at
 * durable; bits only go from 0 to 1, so a torn write of a map byte cannot lose a durable bit.
 */
export class CloneMap {
  private dirtyLow = Infinity;
  private dirtyHigh = -1;
  private present: number;

  private constructor(private readonly fd: number, private readonly path: string, private readonly bits: Buffer, readonly header: CloneMapHeader) {
    let n = 0;
    for (const byte of bits) n += POPCOUNT[byte];
    this.present = n;
  }

  static open(path: string, expect: { volumeId: Buffer; blockSizeBytes: number; blockCount: number }): CloneMap {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r+');
    } catch (err) {
      throw ioError('open', path, err);
    }
    try {
      const all = fs.readFileSync(fd);
      checkPrelude(all.subarray(0, CLONE_MAP.lengthBytes), SPEC, { file: path });
      const header = {
        volumeId: Buffer.from(all.subarray(O.volumeId, O.volumeId + 16)),
        blockSizeBytes: all.readUInt32LE(O.blockSizeBytes),
        blockCount: Number(all.readBigUInt64LE(O.blockCount)),
      };
      if (!header.volumeId.equals(expect.volumeId) || header.blockSizeBytes !== expect.blockSizeBytes || header.blockCount !== expect.blockCount) {
        throw new ChronoError('FOREIGN_CLONE', `${path}: clone map belongs to another volume or geometry`, { file: path });
      }
      // The file is created at its full length (sparse); a shorter one was cut, and its bits are lost.
      if (all.length < mapFileBytes(header.blockCount)) throw new ChronoError('BAD_LENGTH', `${path}: clone map is ${all.length} bytes, expected ${mapFileBytes(header.blockCount)}`, { file: path });
      const bits = Buffer.from(all.subarray(CLONE_MAP.lengthBytes, mapFileBytes(header.blockCount)));
      return new CloneMap(fd, path, bits, header);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
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
      if (i < this.dirtyLow) this.dirtyLow = i;
      if (i > this.dirtyHigh) this.dirtyHigh = i;
    }
  }

  /** Writes the changed bytes of the bitmap and fdatasyncs them. Call only once the data is durable. */
  async persist(): Promise<void> {
    if (this.dirtyHigh < 0) return;
    const low = this.dirtyLow;
    const high = this.dirtyHigh;
    this.dirtyLow = Infinity;
    this.dirtyHigh = -1;
    try {
      // A copy: marks made while this write is in flight must not tear it.
      const slice = Buffer.from(this.bits.subarray(low, high + 1));
      await pwrite(this.fd, slice, 0, slice.length, CLONE_MAP.lengthBytes + low);
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
