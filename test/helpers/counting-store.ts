import { BackingStore, PutData } from '../../src/archive/backing-store';
import { FILE_NAMES } from '../../src/format/constants';

/**
 * Counts the requests for archived segments that reach the store (opening also reads the archive
 * head, volume.cvhd: not a data read): a read served by the cache makes none.
 */
export class CountingStore implements BackingStore {
  gets = 0;
  readonly keys: string[] = [];
  /** Every ranged read of an archived segment, in order. */
  readonly ranges: Array<{ key: string; offset: number; length: number }> = [];
  /** Only where the inner store has one (an encrypted store has none: the reader then reads the end itself). */
  readonly getTail?: (key: string, length: number) => Promise<{ data: Buffer; sizeBytes: number }>;
  constructor(private readonly inner: BackingStore) {
    if (inner.getTail) this.getTail = (key, length) => { this.count('getTail', key); return inner.getTail!(key, length); };
  }
  private count(op: string, key: string): void {
    if (!key.startsWith(FILE_NAMES.archiveSegmentsPrefix)) return;
    this.gets++;
    this.keys.push(`${op} ${key}`);
  }
  get description(): string { return this.inner.description; }
  put(key: string, data: PutData): Promise<void> { return this.inner.put(key, data); }
  getRange(key: string, offset: number, length: number): Promise<Buffer> {
    this.count(`getRange`, key);
    if (key.startsWith(FILE_NAMES.archiveSegmentsPrefix)) this.ranges.push({ key, offset, length });
    return this.inner.getRange(key, offset, length);
  }
  get(key: string): Promise<Buffer> { this.count(`get`, key); return this.inner.get(key); }
  size(key: string): Promise<number | undefined> { this.count(`size`, key); return this.inner.size(key); }
  list(prefix: string): Promise<string[]> { return this.inner.list(prefix); }
  delete(key: string): Promise<void> { return this.inner.delete(key); }
}
