import { ChronoError } from '../errors';
import { BackingStore, PutData, putParts } from './backing-store';

export type StoreOp = 'put' | 'getRange' | 'get' | 'size' | 'list' | 'delete';

/**
 * Wraps a store to inject faults: an outage (`unreachable`), failures chosen per call, silent
 * corruption of what a put stores (to prove uploads are verified before the primary is recycled),
 * and slow uploads (`holdPuts`: puts wait for it before storing anything).
 */
export class FaultyStore implements BackingStore {
  unreachable = false;
  failWhen: (op: StoreOp, key: string) => boolean = () => false;
  corruptPuts = false;
  holdPuts?: Promise<void>;
  /** Keys of the puts started, in order (held ones included). */
  readonly putsStarted: string[] = [];
  readonly description: string;

  constructor(private readonly inner: BackingStore) {
    this.description = `faulty:${inner.description}`;
  }

  private check(op: StoreOp, key: string): void {
    if (this.unreachable) throw new ChronoError('ARCHIVE_UNAVAILABLE', `injected: archive unreachable (${op} ${key})`);
    if (this.failWhen(op, key)) throw new ChronoError('ARCHIVE_UNAVAILABLE', `injected failure on ${op} ${key}`);
  }

  async put(key: string, parts: PutData): Promise<void> {
    this.check('put', key);
    this.putsStarted.push(key);
    if (this.holdPuts) await this.holdPuts;
    let stored = parts;
    if (this.corruptPuts) {
      const data = Buffer.concat(putParts(parts));
      if (data.length > 0) data[data.length >> 1] ^= 0xff;
      stored = data;
    }
    return this.inner.put(key, stored);
  }
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    this.check('getRange', key);
    return this.inner.getRange(key, offset, length);
  }
  async get(key: string): Promise<Buffer> {
    this.check('get', key);
    return this.inner.get(key);
  }
  async size(key: string): Promise<number | undefined> {
    this.check('size', key);
    return this.inner.size(key);
  }
  async list(prefix: string): Promise<string[]> {
    this.check('list', prefix);
    return this.inner.list(prefix);
  }
  async delete(key: string): Promise<void> {
    this.check('delete', key);
    return this.inner.delete(key);
  }
}
