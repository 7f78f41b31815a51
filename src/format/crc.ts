import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C (Castagnoli) of `buf`, optionally continuing from `initial`. */
export function crc32c(buf: Uint8Array, initial = 0): number {
  return nativeCrc32c(buf as Buffer, initial) >>> 0;
}
