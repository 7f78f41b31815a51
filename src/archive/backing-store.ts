/**
 * Where history lives once it leaves the working set. Object-store shaped (an S3 implementation
 * is planned): whole-object puts that appear atomically, ranged reads, listing by prefix.
 */
export interface BackingStore {
  readonly description: string;
  /**
   * Stores `data` under `key`, replacing any object there; visible whole or not at all. Parts are
   * stored back to back, so a large object need not be gathered into one buffer first.
   */
  put(key: string, data: Buffer | Buffer[]): Promise<void>;
  /** Exactly `length` bytes at `offset`; fails with ARCHIVE_MISSING if the object is absent. */
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  get(key: string): Promise<Buffer>;
  /** Object size, or undefined when absent. */
  size(key: string): Promise<number | undefined>;
  /** Keys starting with `prefix`, sorted. */
  list(prefix: string): Promise<string[]>;
  delete(key: string): Promise<void>;
  /**
   * Optional: stores the local file `file` under `key` without copying its bytes (a hard link
   * into a local archive on the same file system), durably. False, with nothing stored, when
   * it cannot (another file system, no links): the caller then puts a copy. The file must never
   * change afterwards: it and the object are one.
   */
  linkFrom?(key: string, file: string): Promise<boolean>;
}
