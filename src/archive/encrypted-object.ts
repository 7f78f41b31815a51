import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { ChronoError } from '../errors';
import { ENCRYPTED_OBJECT as E } from '../format/constants';
import { PreludeSpec, checkPrelude, newPrelude, sealPrelude } from '../format/header-check';

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
  return { raw, plainLength: Number(raw.readBigUInt64LE(E.off.plainLength)), keyId: stored, salt: Buffer.from(raw.subarray(E.off.salt, E.off.salt + E.saltBytes)) };
}

export function objectKey(secret: Buffer, salt: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, salt, E.objectKeyInfo, 32));
}

function nonce(index: number): Buffer {
  const n = Buffer.alloc(E.nonceBytes);
  n.writeBigUInt64LE(BigInt(index), 0);
  return n;
}

/** Associated data of chunk `index`: the label, the object's name, the header, the index and final flag. */
function aad(objectName: string, header: Buffer, index: number, final: boolean): Buffer {
  const name = Buffer.from(objectName, 'utf8');
  const b = Buffer.alloc(E.aadLabel.length + 4 + name.length + header.length + 9);
  let at = b.write(E.aadLabel, 0, 'ascii');
  at = b.writeUInt32LE(name.length, at);
  at += name.copy(b, at);
  at += header.copy(b, at);
  at = b.writeBigUInt64LE(BigInt(index), at);
  b.writeUInt8(final ? 1 : 0, at);
  return b;
}

/**
 * Seals an object lazily: the header, then per chunk its ciphertext and tag, each chunk sealed
 * only when its parts are taken, so a store writing as it takes them overlaps sealing with I/O.
 */
export function sealStream(objectName: string, secret: Buffer, keyId: string, parts: Buffer[]): { header: Buffer; totalBytes: number; parts: Iterable<Buffer> } {
  const plainLength = parts.reduce((n, p) => n + p.length, 0);
  const salt = randomBytes(E.saltBytes);
  const header = encodeHeader(plainLength, keyId, salt);
  return { header, totalBytes: storedLength(plainLength), parts: sealedParts(objectName, objectKey(secret, salt), header, plainLength, parts) };
}

function* sealedParts(objectName: string, key: Buffer, header: Buffer, plainLength: number, parts: Buffer[]): Generator<Buffer> {
  yield header;
  const count = chunkCount(plainLength);
  let part = 0;
  let partAt = 0;
  for (let i = 0; i < count; i++) {
    const c = createCipheriv(E.cipher, key, nonce(i), { authTagLength: E.tagBytes });
    c.setAAD(aad(objectName, header, i, i === count - 1));
    // Feed the chunk's plaintext from the parts as they lie, without gathering it first.
    let need = Math.min(E.chunkPlainBytes, plainLength - i * E.chunkPlainBytes);
    while (need > 0) {
      const take = Math.min(need, parts[part].length - partAt);
      yield c.update(parts[part].subarray(partAt, partAt + take));
      partAt += take;
      need -= take;
      if (partAt === parts[part].length) {
        part++;
        partAt = 0;
      }
    }
    const tail = c.final(); // empty for GCM, which only computes the tag here
    if (tail.length > 0) yield tail;
    yield c.getAuthTag();
  }
}

/**
 * Opens chunks first … first+n-1 of an object, given their stored bytes back to back, into
 * plaintext. Any chunk that fails authentication fails the whole call with ARCHIVE_AUTH_FAILED.
 */
export function openChunks(objectName: string, secret: Buffer, h: EncryptedHeader, first: number, stored: Buffer): Buffer {
  const count = chunkCount(h.plainLength);
  const key = objectKey(secret, h.salt);
  const lastPlain = h.plainLength - (count - 1) * E.chunkPlainBytes;
  const out: Buffer[] = [];
  let at = 0;
  for (let i = first; at < stored.length; i++) {
    const plain = i === count - 1 ? lastPlain : E.chunkPlainBytes;
    if (i >= count || at + plain + E.tagBytes > stored.length) throw authFailed(objectName, `chunk ${i} is cut short or beyond the object's end`);
    const d = createDecipheriv(E.cipher, key, nonce(i), { authTagLength: E.tagBytes });
    d.setAAD(aad(objectName, h.raw, i, i === count - 1));
    d.setAuthTag(stored.subarray(at + plain, at + plain + E.tagBytes));
    try {
      out.push(d.update(stored.subarray(at, at + plain)), d.final());
    } catch {
      throw authFailed(objectName, `chunk ${i} fails authentication`);
    }
    at += plain + E.tagBytes;
  }
  return Buffer.concat(out);
}

export function authFailed(objectName: string, why: string): ChronoError {
  return new ChronoError('ARCHIVE_AUTH_FAILED', `encrypted archive object ${objectName} is not as it was sealed: ${why} (altered, truncated, or another object put in its place)`, { key: objectName, reason: why });
}
