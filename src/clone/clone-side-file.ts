import * as fs from 'node:fs';
import { ChronoError, ioError } from '../errors';
import { PreludeSpec, checkPrelude } from '../format/header-check';

/** What a clone's side files (overlay map, checksums) must match: the volume and its geometry. */
export interface CloneGeometry {
  volumeId: Buffer;
  blockSizeBytes: number;
  blockCount: number;
}

/** Where a side file's header keeps that geometry (FORMAT.md's tables, constants.ts). */
export interface GeometryOffsets {
  volumeId: number;
  blockSizeBytes: number;
  blockCount: number;
}

/**
 * Opens a clone side file for update and checks it in the format's order: prelude (magic,
 * version, length, CRC), then that it belongs to `expect` (FOREIGN_CLONE otherwise). `read`
 * returns the bytes to check, the header alone or the whole file; `build` gets the descriptor,
 * those bytes and the geometry read. The descriptor is closed if anything throws.
 */
export function openCloneSideFile<T>(
  path: string,
  spec: PreludeSpec,
  off: GeometryOffsets,
  expect: CloneGeometry,
  read: (fd: number) => Buffer,
  build: (fd: number, bytes: Buffer, geometry: CloneGeometry) => T,
): T {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r+');
  } catch (err) {
    throw ioError('open', path, err);
  }
  try {
    const bytes = read(fd);
    checkPrelude(bytes.subarray(0, spec.lengthBytes), spec, { file: path });
    const geometry: CloneGeometry = {
      volumeId: Buffer.from(bytes.subarray(off.volumeId, off.volumeId + 16)),
      blockSizeBytes: bytes.readUInt32LE(off.blockSizeBytes),
      blockCount: Number(bytes.readBigUInt64LE(off.blockCount)),
    };
    if (!geometry.volumeId.equals(expect.volumeId) || geometry.blockSizeBytes !== expect.blockSizeBytes || geometry.blockCount !== expect.blockCount) {
      throw new ChronoError('FOREIGN_CLONE', `${path}: the ${spec.what} file belongs to another volume or geometry`, { file: path });
    }
    return build(fd, bytes, geometry);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}
