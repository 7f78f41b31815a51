import { PartStream } from '../storage/durable-file';

/**
 * Where history lives once it leaves the working set. Object-store shaped (an S3 implementation
 * is planned): whole-object puts that appear atomically, ranged reads, listing by prefix.
 */
export interface BackingStore {
  readonly description: string;
  /**
   * Stores `data` under `key`, replacing any object there; visible whole or not at all. Parts are
   * stored back to back, so a large object need not be gathered into one buffer first; a
   * PartStream's parts are made as they are taken (sealing), so a store that writes as it goes
   * overlaps making them with writing them.
   */
  put(key: string, data: PutData): Promise<void>;
  /**
   * Exactly `length` bytes at `offset`; fails with ARCHIVE_MISSING if the object is absent. The
   * buffer returned (of getRange, get and getTail alike) is the caller's to change: never a view
   * of memory the store keeps (the encrypted store opens chunks in place in it).
   */
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  get(key: string): Promise<Buffer>;
  /**
   * Optional: the last `length` bytes (all of them if the object is shorter) and the object's
   * size, in one request: an archived segment's trailer and offset table in one round trip
   * instead of three (size, trailer, table). ARCHIVE_MISSING if the object is absent.
   */
  getTail?(key: string, length: number): Promise<{ data: Buffer; sizeBytes: number }>;
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

export type PutData = Buffer | Buffer[] | PartStream;

/** The parts of a put as a list, a stream's copied as taken (for stores that need them all at once). */
export function putParts(data: PutData): Buffer[] {
  if (Buffer.isBuffer(data)) return [data];
  return Array.isArray(data) ? data : Array.from(data.parts, (p) => Buffer.from(p));
}

export function putLength(data: PutData): number {
  if (Buffer.isBuffer(data)) return data.length;
  return Array.isArray(data) ? data.reduce((n, p) => n + p.length, 0) : data.totalBytes;
}
