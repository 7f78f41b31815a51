import { hkdfSync, randomBytes } from 'node:crypto';
import { ChronoError } from '../errors';
import { ENCRYPTED_OBJECT as E } from '../format/constants';
import { PreludeSpec, checkPrelude, newPrelude, sealPrelude } from '../format/header-check';
import { ChunkParams, canOpenInPlace, openChunksInto, sealChunk } from './gcm-chunk';

/**
 * The codec of encrypted archive objects (docs/FORMAT.md "Encrypted archive objects"): a
 * 64-byte header, then AES-256-GCM chunks. Each object has its own key, HKDF(secret, salt), with
 * a fresh random salt per put; each chunk's nonce is its index; each chunk's associated data
 * binds the object's name, the whole header and the chunk's index and final flag.
 */
export interface EncryptedHeader {
  raw: Buffer;
  plainLength: number;
  keyId: string;
  salt: Buffer;
  /** The object's key (HKDF of the secret and salt), derived at its first use and kept with the header. */
  objectKey?: Buffer;
}

const PRELUDE: PreludeSpec = { what: 'encrypted archive object', magic: E.magic, lengthBytes: E.lengthBytes, crcOffset: E.off.crc };

export const STORED_CHUNK_BYTES = E.chunkPlainBytes + E.tagBytes;

/** Chunks of an object of `plainLength` bytes: at least one, so even an empty object is authenticated. */
export function chunkCount(plainLength: number): number {
  return Math.max(1, Math.ceil(plainLength / E.chunkPlainBytes));
}

export function storedLength(plainLength: number): number {
  return E.lengthBytes + plainLength + chunkCount(plainLength) * E.tagBytes;
}

export function encodeHeader(plainLength: number, keyId: string, salt: Buffer): Buffer {
  const h = newPrelude(PRELUDE);
  h.writeUInt32LE(E.chunkPlainBytes, E.off.chunkPlainBytes);
  h.writeBigUInt64LE(BigInt(plainLength), E.off.plainLength);
  Buffer.from(keyId, 'hex').copy(h, E.off.keyId);
  salt.copy(h, E.off.salt);
  return sealPrelude(h, PRELUDE);
}

/** Validates a header (magic, version, length, CRC, flags, then the key it was sealed with). */
export function decodeHeader(raw: Buffer, objectName: string, keyId: string): EncryptedHeader {
  const ctx = { key: objectName, encrypted: true };
  checkPrelude(raw, { ...PRELUDE, what: `encrypted archive object ${objectName}` }, ctx);
  if (raw.readUInt32LE(E.off.chunkPlainBytes) !== E.chunkPlainBytes) {
    throw new ChronoError('UNSUPPORTED', `encrypted archive object ${objectName} uses chunks of ${raw.readUInt32LE(E.off.chunkPlainBytes)} bytes`, ctx);
  }
  const stored = raw.subarray(E.off.keyId, E.off.keyId + E.keyIdBytes).toString('hex');
  if (stored !== keyId) {
    throw new ChronoError('ARCHIVE_WRONG_KEY', `archive object ${objectName} was sealed with another key (key id ${stored}, the key file's is ${keyId})`, { ...ctx, objectKeyId: stored, keyId });
  }
  // Its own copy of the header's bytes: `raw` is often a view of a whole read (an object's first
  // chunks, or all of it), which a cached header would otherwise keep alive.
  return { raw: Buffer.from(raw.subarray(0, E.lengthBytes)), plainLength: Number(raw.readBigUInt64LE(E.off.plainLength)), keyId: stored, salt: Buffer.from(raw.subarray(E.off.salt, E.off.salt + E.saltBytes)) };
}

export function objectKey(secret: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, E.objectKeyInfo, 32));
}

/** Chunks sealed per part handed out: about 1 MiB, enough to keep a writer busy, small enough to start soon. */
const CHUNKS_PER_PART = 16;

/**
 * Seals an object lazily: the header, then its chunks (ciphertext and tag each), a few at a time
 * as they are taken, so a store writing as it takes them overlaps sealing with its I/O. A store
 * that needs the whole object at once has it sealed straight into its own buffer (`into`).
 * Either is used once.
 */
export function sealStream(objectName: string, secret: Buffer, keyId: string, parts: Buffer[]): { header: Buffer; totalBytes: number; parts: Iterable<Buffer>; into(out: Buffer): void } {
  const plainLength = parts.reduce((n, p) => n + p.length, 0);
  const salt = randomBytes(E.saltBytes);
  const header = encodeHeader(plainLength, keyId, salt);
  const key = objectKey(secret, salt);
  const totalBytes = storedLength(plainLength);
  return {
    header,
    totalBytes,
    parts: sealedParts(objectName, key, header, plainLength, parts),
    into: (out: Buffer) => {
      if (out.length !== totalBytes) throw new Error(`internal: sealing ${totalBytes} bytes into ${out.length}`);
      header.copy(out, 0);
      const count = chunkCount(plainLength);
      sealChunks(key, new ChunkParams(objectName, header, count), new PartReader(parts), 0, count, plainLength, out.subarray(header.length));
    },
  };
}

function* sealedParts(objectName: string, key: Buffer, header: Buffer, plainLength: number, parts: Buffer[]): Generator<Buffer> {
  yield header;
  const count = chunkCount(plainLength);
  const params = new ChunkParams(objectName, header, count);
  const plain = new PartReader(parts);
  // Reused for every part handed out (a PartStream's part is good until the next is taken).
  const scratch = Buffer.allocUnsafe(Math.min(CHUNKS_PER_PART * STORED_CHUNK_BYTES, storedLength(plainLength) - header.length));
  for (let first = 0; first < count; first += CHUNKS_PER_PART) {
    const n = Math.min(CHUNKS_PER_PART, count - first);
    yield scratch.subarray(0, sealChunks(key, params, plain, first, n, plainLength, scratch));
  }
}

/** Seals chunks first … first+n-1, taking their plaintext from `plain`, back to back into `out`; returns the bytes written. */
function sealChunks(key: Buffer, params: ChunkParams, plain: PartReader, first: number, n: number, plainLength: number, out: Buffer): number {
  let at = 0;
  for (let i = first; i < first + n; i++) {
    const src = plain.take(Math.min(E.chunkPlainBytes, plainLength - i * E.chunkPlainBytes));
    const p = params.at(i);
    sealChunk(key, p.nonce, p.aad, src, out.subarray(at, at + src.length + E.tagBytes));
    at += src.length + E.tagBytes;
  }
  return at;
}

/** Takes consecutive ranges of a list of parts: a view where a range lies in one part, else a gathered copy. */
class PartReader {
  private part = 0;
  private at = 0;
  constructor(private readonly parts: Buffer[]) {}

  take(length: number): Buffer {
    while (this.part < this.parts.length && this.at === this.parts[this.part].length) this.next();
    const p = this.parts[this.part];
    if (p && this.at + length <= p.length) {
      this.at += length;
      return p.subarray(this.at - length, this.at);
    }
    const out = Buffer.allocUnsafe(length);
    for (let done = 0; done < length; ) {
      if (this.at === this.parts[this.part].length) this.next();
      const n = this.parts[this.part].copy(out, done, this.at, this.at + length - done);
      this.at += n;
      done += n;
    }
    return out;
  }

  private next(): void {
    this.part++;
    this.at = 0;
  }
}

/**
 * Opens chunks first … first+n-1 of an object, given their stored bytes back to back, into one
 * plaintext buffer, on the threadpool where the native addon is there. Any chunk that fails
 * authentication fails the whole call with ARCHIVE_AUTH_FAILED. `stored` is used up: the
 * plaintext is opened into its own first bytes where the opener can (so it must be the caller's,
 * never a store's own memory), and a failed call leaves it garbage.
 */
export async function openChunks(objectName: string, secret: Buffer, h: EncryptedHeader, first: number, stored: Buffer): Promise<Buffer> {
  const count = chunkCount(h.plainLength);
  const lastPlain = h.plainLength - (count - 1) * E.chunkPlainBytes;
  // The chunks' layout first: the opener is then only asked to open what is there.
  let at = 0;
  let plainBytes = 0;
  for (let i = first; at < stored.length; i++) {
    const plain = i === count - 1 ? lastPlain : E.chunkPlainBytes;
    if (i >= count || at + plain + E.tagBytes > stored.length) throw authFailed(objectName, `chunk ${i} is cut short or beyond the object's end`);
    at += plain + E.tagBytes;
    plainBytes += plain;
  }
  const out = canOpenInPlace ? stored.subarray(0, plainBytes) : Buffer.allocUnsafe(plainBytes);
  if (stored.length === 0) return out;
  h.objectKey ??= objectKey(secret, h.salt);
  const bad = await openChunksInto(h.objectKey, new ChunkParams(objectName, h.raw, count), first, stored, out);
  if (bad >= 0) throw authFailed(objectName, `chunk ${first + bad} fails authentication`);
  return out;
}

export function authFailed(objectName: string, why: string): ChronoError {
  return new ChronoError('ARCHIVE_AUTH_FAILED', `encrypted archive object ${objectName} is not as it was sealed: ${why} (altered, truncated, or another object put in its place)`, { key: objectName, reason: why });
}
