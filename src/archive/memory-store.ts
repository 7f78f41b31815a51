import { ChronoError } from '../errors';
import { BackingStore, PutData, putParts } from './backing-store';

/** An object store in memory, with S3's semantics: atomic whole puts, ranged gets. */
export class MemoryStore implements BackingStore {
  readonly description = 'memory';
  readonly objects = new Map<string, Buffer>();

  async put(key: string, data: PutData): Promise<void> {
    this.objects.set(key, Buffer.concat(putParts(data)));
  }
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    const o = this.objects.get(key);
    if (!o) throw new ChronoError('ARCHIVE_MISSING', `archive object missing: ${key}`, { key });
    if (offset + length > o.length) throw new ChronoError('ARCHIVE_MISSING', `archive object ${key} is shorter than expected`, { key });
    return Buffer.from(o.subarray(offset, offset + length));
  }
  async get(key: string): Promise<Buffer> {
    const o = this.objects.get(key);
    if (!o) throw new ChronoError('ARCHIVE_MISSING', `archive object missing: ${key}`, { key });
    return Buffer.from(o);
  }
  async size(key: string): Promise<number | undefined> {
    return this.objects.get(key)?.length;
  }
  async list(prefix: string): Promise<string[]> {
    return [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
}
