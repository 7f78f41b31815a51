import * as path from 'node:path';

/**
 * chronovol's optional native addon (native/, built by scripts/setup): hardware CRC32C, AES-GCM
 * without allocations, read-ahead that copies nothing, early write-back, and the volume lock (an OFD lock). Every user has a pure-Node fallback (or,
 * for a hint, simply goes without), so a machine that cannot build it loses speed, never
 * correctness. CHRONOVOL_NATIVE=0 turns it off.
 */
export interface NativeAddon {
  crc32c?(buf: Uint8Array, initial: number): number;
  packUnits?(src: Uint8Array, srcOffset: number, blockSizeBytes: number, count: number, dst: Uint8Array, dstOffset: number): void;
  unpackUnits?(src: Uint8Array, srcOffset: number, blockSizeBytes: number, count: number, dst: Uint8Array, dstOffset: number): number;
  checkUnits?(src: Uint8Array, srcOffset: number, blockSizeBytes: number, count: number): number;
  /** posix_fadvise(WILLNEED) on the threadpool; calls back with 0 or an errno. */
  willNeed?(fd: number, position: number, length: number, cb: (errno: number) => void): void;
  /** sync_file_range(SYNC_FILE_RANGE_WRITE) on the threadpool; calls back with 0 or an errno. */
  writeBack?(fd: number, position: number, length: number, cb: (errno: number) => void): void;
  /** pread that never waits for the disk (preadv2 RWF_NOWAIT): bytes read, 0 if none cached, or -errno. */
  preadNoWait?(fd: number, buf: Uint8Array, bufOffset: number, length: number, position: number): number;
  /** The CPUs a thread of this process (by tid; 0: the calling thread) may run on. */
  threadAffinity?(tid?: number): number[];
  /** Restricts a thread (by tid; 0: the calling thread) to `cpus`; returns 0 or an errno. */
  setThreadAffinity?(cpus: number[], tid?: number): number;
  /** The CPU the calling thread runs on now. */
  currentCpu?(): number;
  /** A Buffer whose memory is aligned to `align` bytes (for O_DIRECT). */
  alignedBuffer?(sizeBytes: number, align: number): Buffer;
  /** An exclusive OFD lock (fcntl F_OFD_SETLK) on the whole file: 0 when taken, or an errno (EAGAIN: held elsewhere). */
  lockNoWait?(fd: number): number;
  /** F_OFD_GETLK: 1 when another open file description holds a lock on the file, 0 when none does, or -errno. */
  lockHeld?(fd: number): number;
  /** AES-256-GCM with Node's own OpenSSL: dst (src.length + 16) gets the ciphertext, then the tag. */
  gcmSeal?(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, src: Uint8Array, dst: Uint8Array): void;
  /** The reverse: src is ciphertext then tag, dst (16 shorter) the plaintext; false if not authentic (dst is then garbage). */
  gcmOpen?(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, src: Uint8Array, dst: Uint8Array): boolean;
  /**
   * Opens chunks first.. of an object of `count` chunks, back to back in src, into dst, on the
   * threadpool (nonce: the index; aad: a template whose last 9 bytes are the index and final
   * flag). Calls back with -1, the first chunk (from 0) not authentic, or -2 if they do not fit.
   */
  gcmOpenChunks?(key: Uint8Array, aad: Uint8Array, first: number, count: number, chunkPlainBytes: number, src: Uint8Array, dst: Uint8Array, cb: (bad: number) => void): void;
  /** True when gcmOpenChunks may be given dst = src (the same first byte): opened in place, plaintext moved down over the tags. */
  gcmOpenChunksInPlace?: boolean;
}

function load(): NativeAddon {
  try {
    // dist/src/util -> the package root, where node-gyp puts build/.
    return require(path.join(__dirname, '..', '..', '..', 'build', 'Release', 'chronovol_native.node')) as NativeAddon;
  } catch {
    return {};
  }
}

/** The addon as built (its functions are present or not); `enabled` says whether to use it. */
export const nativeAddon: NativeAddon = load();
export const nativeEnabled = process.env.CHRONOVOL_NATIVE !== '0';
