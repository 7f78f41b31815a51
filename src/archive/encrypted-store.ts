import { LRUCache } from 'lru-cache';
import { ChronoError, isChronoError } from '../errors';
import { ENCRYPTED_OBJECT as E } from '../format/constants';
import { ArchiveKey } from './archive-key';
import { BackingStore, PutData, putParts } from './backing-store';
import { EncryptedHeader, STORED_CHUNK_BYTES, authFailed, chunkCount, decodeHeader, openChunks, sealStream, storedLength } from './encrypted-object';

const HEADERS_CACHED = 1024;
/** An uncached header is read in the same request as chunks starting at most this far after it. */
const HEADER_GAP_BYTES = STORED_CHUNK_BYTES;

/**
 * Encryption at rest as a wrapper around any store (local dir, S3, memory): what the inner store
 * holds is sealed (encrypted-object.ts); what callers put and get is plaintext, with the same
 * contract. A ranged read fetches the header (cached) and only the chunks it touches.
 */
export class EncryptedStore implements BackingStore {
  readonly description: string;
  /** Headers of objects read or written here: a ranged read then costs one request. */
  private readonly headers = new LRUCache<string, EncryptedHeader>({ max: HEADERS_CACHED });

  constructor(readonly inner: BackingStore, private readonly key: ArchiveKey) {
    this.description = `encrypted ${inner.description}`;
  }

  async put(key: string, data: PutData): Promise<void> {
    this.headers.delete(key);
    // Sealed as the inner store takes the parts: a local directory seals the next chunks while
    // it writes the last ones.
    const sealed = sealStream(key, this.key.secret, this.key.keyId, putParts(data));
    await this.inner.put(key, sealed);
    this.headers.set(key, decodeHeader(sealed.header, key, this.key.keyId));
  }

  async get(key: string): Promise<Buffer> {
    const obj = await this.inner.get(key);
    const h = decodeHeader(obj.subarray(0, E.lengthBytes), key, this.key.keyId);
    if (obj.length !== storedLength(h.plainLength)) throw authFailed(key, `${obj.length} bytes stored where its header makes ${storedLength(h.plainLength)}`);
    const plain = await openChunks(key, this.key.secret, h, 0, obj.subarray(E.lengthBytes));
    this.headers.set(key, h);
    return plain;
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    try {
      const cached = this.headers.get(key);
      return await (cached ? this.readRange(key, offset, length, cached) : this.readFirst(key, offset, length));
    } catch (err) {
      // A header cached before another writer replaced the object fails to authenticate its
      // chunks (or one read beside chunks of another object): once more, with the current header.
      if (!isChronoError(err, 'ARCHIVE_AUTH_FAILED') || !this.headers.has(key)) throw err;
      this.headers.delete(key);
      return this.readRange(key, offset, length, await this.header(key));
    }
  }

  /**
   * A ranged read of an object whose header is not cached (the first of a freshly opened
   * volume): the header in the same request when the chunks start close to it, else fetched
   * beside them, not before them. The chunks are asked for whole, as if the last one touched
   * were not the object's shorter final chunk; where it is, that read comes up short, and the
   * read is done again once the header says where the object ends.
   */
  private async readFirst(key: string, offset: number, length: number): Promise<Buffer> {
    if (length === 0) return this.readRange(key, offset, length, await this.header(key));
    const first = Math.floor(offset / E.chunkPlainBytes);
    const start = E.lengthBytes + first * STORED_CHUNK_BYTES;
    const end = E.lengthBytes + (Math.floor((offset + length - 1) / E.chunkPlainBytes) + 1) * STORED_CHUNK_BYTES;
    const together = start - E.lengthBytes <= HEADER_GAP_BYTES;
    const from = together ? 0 : start;
    const bytesP = this.inner.getRange(key, from, end - from).catch((err) => {
      if (isChronoError(err, 'ARCHIVE_MISSING') && err.message.includes('shorter')) return undefined;
      throw err;
    });
    let h: EncryptedHeader;
    let bytes: Buffer | undefined;
    if (together) {
      bytes = await bytesP;
      if (!bytes) return this.readRange(key, offset, length, await this.header(key));
      h = decodeHeader(bytes.subarray(0, E.lengthBytes), key, this.key.keyId);
      this.headers.set(key, h);
    } else {
      [h, bytes] = await Promise.all([this.header(key), bytesP]);
      if (!bytes) return this.readRange(key, offset, length, h);
    }
    return this.openRange(key, offset, length, h, bytes.subarray(start - from));
  }

  private async readRange(key: string, offset: number, length: number, h: EncryptedHeader): Promise<Buffer> {
    if (offset + length > h.plainLength) throw shortObject(key, offset, length);
    if (length === 0) return Buffer.alloc(0);
    const first = Math.floor(offset / E.chunkPlainBytes);
    const last = Math.min(chunkCount(h.plainLength) - 1, Math.floor((offset + length - 1) / E.chunkPlainBytes));
    const start = E.lengthBytes + first * STORED_CHUNK_BYTES;
    const end = Math.min(storedLength(h.plainLength), E.lengthBytes + (last + 1) * STORED_CHUNK_BYTES);
    let stored: Buffer;
    try {
      stored = await this.inner.getRange(key, start, end - start);
    } catch (err) {
      // The header says these bytes exist: an object shorter than that was cut.
      if (isChronoError(err, 'ARCHIVE_MISSING') && err.message.includes('shorter')) throw authFailed(key, 'it is shorter than its header says');
      throw err;
    }
    return this.openRange(key, offset, length, h, stored);
  }

  /** `length` plaintext bytes at `offset`, opened from the stored bytes of the chunks holding them (the first first). */
  private async openRange(key: string, offset: number, length: number, h: EncryptedHeader, stored: Buffer): Promise<Buffer> {
    if (offset + length > h.plainLength) throw shortObject(key, offset, length);
    const first = Math.floor(offset / E.chunkPlainBytes);
    const plain = await openChunks(key, this.key.secret, h, first, stored);
    const at = offset - first * E.chunkPlainBytes;
    return plain.subarray(at, at + length);
  }

  private async header(key: string): Promise<EncryptedHeader> {
    const cached = this.headers.get(key);
    if (cached) return cached;
    const h = decodeHeader(await this.inner.getRange(key, 0, E.lengthBytes), key, this.key.keyId);
    this.headers.set(key, h);
    return h;
  }

  /** The plaintext size, from the header; an object whose stored size disagrees with it was cut. */
  async size(key: string): Promise<number | undefined> {
    const storedBytes = await this.inner.size(key);
    if (storedBytes === undefined) return undefined;
    if (storedBytes < E.lengthBytes) throw authFailed(key, `${storedBytes} bytes cannot hold its header`);
    let h = await this.header(key);
    if (storedBytes !== storedLength(h.plainLength) && this.headers.has(key)) {
      this.headers.delete(key); // cached before another writer replaced the object?
      h = await this.header(key);
    }
    if (storedBytes !== storedLength(h.plainLength)) {
      this.headers.delete(key);
      throw authFailed(key, `${storedBytes} bytes stored where its header makes ${storedLength(h.plainLength)}`);
    }
    return h.plainLength;
  }

  list(prefix: string): Promise<string[]> {
    return this.inner.list(prefix);
  }

  async delete(key: string): Promise<void> {
    this.headers.delete(key);
    await this.inner.delete(key);
  }
}

function shortObject(key: string, offset: number, length: number): ChronoError {
  return new ChronoError('ARCHIVE_MISSING', `archive object ${key} is shorter than expected`, { key, offset, length });
}
