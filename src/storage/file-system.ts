/**
 * The primary store's view of a file system. Synchronous where the engine must finish in one
 * tick (a lookup and its read of cached bytes); the async variants run on the libuv threadpool
 * for whatever would make the event loop wait for the disk. Every operation is on the volume's
 * own files, never on a FUSE mount, so no threadpool thread can wait on our own daemon (see
 * docs/DESIGN.md).
 */
export interface FileHandle {
  /** Reads up to `length` bytes at `position`; returns the count read (short at end of file). */
  read(buf: Buffer, bufOffset: number, length: number, position: number): number;
  /** Writes all of `length` bytes at `position`. */
  write(buf: Buffer, bufOffset: number, length: number, position: number): void;
  /** Makes written data durable (fdatasync). */
  sync(): void;
  /**
   * The same, off the event loop (libuv threadpool). Only ever used on the volume's own files,
   * never on a FUSE mount, so a threadpool thread can never wait on our own daemon.
   */
  writeAsync(buf: Buffer, bufOffset: number, length: number, position: number): Promise<void>;
  /** Reads up to `length` bytes at `position` on the threadpool; resolves with the count read. */
  readAsync(buf: Buffer, bufOffset: number, length: number, position: number): Promise<number>;
  syncAsync(): Promise<void>;
  size(): number;
  truncate(length: number): void;
  close(): void;
  /**
   * Optional: reads what the OS cache holds of the range, without waiting for the disk; returns
   * the count read, short (even 0) where the rest is not cached. Without it, callers read().
   */
  readNoWait?(buf: Buffer, bufOffset: number, length: number, position: number): number;
  /**
   * Optional hint: start reading this range into the OS cache in the background. Never waited
   * for, never touches anything but this file (so it cannot block on a FUSE mount).
   */
  prefetch?(position: number, length: number): void;
  /** Keeps the descriptor open (a close meanwhile is deferred) until the returned function is called. */
  hold?(): () => void;
  /**
   * Optional hint: start writing this just-written range to the disk now, so the next sync
   * finds little left to do. Promises nothing: durability still comes from sync.
   */
  startWriteback?(position: number, length: number): void;
  /**
   * Set when the file was opened for direct writes ('createNewDirect') and the OS took it:
   * writes bypass the page cache, so their buffers (from `alloc`), positions and lengths must
   * be multiples of alignBytes. Reads are unaffected.
   */
  directWrites?: { alignBytes: number; alloc(sizeBytes: number): Buffer };
  /** Optional: reads that bypass the OS cache (see DirectReads). */
  directReads?: DirectReads;
}

/**
 * Reads that bypass the OS cache (O_DIRECT), for bytes read once in bulk (a scan of a sealed
 * segment): the disk's DMA lands in the caller's buffer, with no page-cache fill and no copy out
 * of it.
 */
export interface DirectReads {
  alignBytes: number;
  /** A buffer for `read`, aligned to alignBytes. */
  alloc(sizeBytes: number): Buffer;
  /**
   * Reads `length` bytes at `position` (both multiples of alignBytes) into buf from its start, on
   * the threadpool; resolves with the count read, short only at the end of the file. undefined,
   * at once, when the file system refuses direct reads.
   */
  read(buf: Buffer, length: number, position: number): Promise<number> | undefined;
}

/** createNewDirect: createNew, with direct (O_DIRECT) writes where the OS supports them. */
export type OpenMode = 'read' | 'readWrite' | 'createNew' | 'createNewDirect';

export interface FileSystem {
  open(path: string, mode: OpenMode): FileHandle;
  exists(path: string): boolean;
  readFile(path: string): Buffer;
  /**
   * A whole file, read on the threadpool. `direct` bypasses the OS cache where the file system
   * allows it: for large objects read once (an archived segment read back), where direct reads
   * keep the disk streaming and check what the disk holds, not what the cache does.
   */
  readFileAsync(path: string, o?: { direct?: boolean }): Promise<Buffer>;
  /** Names in a directory, sorted; empty when it does not exist. */
  list(dir: string): string[];
  mkdirp(dir: string): void;
  remove(path: string): void;
  /** remove on the threadpool: unlinking a large file frees its blocks, which can take milliseconds. */
  removeAsync(path: string): Promise<void>;
  rename(from: string, to: string): void;
  /**
   * Optional: a second name for an existing file (a hard link), so a sealed segment can enter a
   * local archive on the same file system without its bytes being stored twice. Fails with
   * errno EXDEV across file systems (callers then copy).
   */
  link?(existing: string, newPath: string): void;
  /** Optional, with link: do both paths name the same file (device and inode)? */
  sameFile?(a: string, b: string): boolean;
  /** Makes a directory's entries (creates, renames, removes) durable. */
  syncDir(dir: string): void;
  /** syncDir on the threadpool. */
  syncDirAsync(dir: string): Promise<void>;
}

export function dirname(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? (i === 0 ? '/' : '.') : path.slice(0, i);
}
