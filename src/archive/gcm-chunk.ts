import { createCipheriv, createDecipheriv } from 'node:crypto';
import { ENCRYPTED_OBJECT as E } from '../format/constants';
import { nativeAddon, nativeEnabled } from '../util/native-addon';

/**
 * One AES-256-GCM chunk of an encrypted archive object, sealed or opened into the caller's
 * buffer. The native addon does it in place; Node's Cipher (the fallback) hands back a fresh
 * buffer per call, copied into place here.
 */
const native = nativeEnabled && nativeAddon.gcmSeal && nativeAddon.gcmOpen ? nativeAddon : undefined;

/**
 * The nonce and associated data of one object's chunks, rewritten in place per chunk (each is
 * used up before the next chunk's): the nonce is the chunk's index; the associated data is the
 * label, the object's name, the header, then the chunk's index and final flag.
 */
export class ChunkParams {
  readonly nonce = Buffer.alloc(E.nonceBytes);
  readonly aad: Buffer;
  private readonly tailAt: number;

  constructor(objectName: string, header: Buffer, readonly count: number) {
    const name = Buffer.from(objectName, 'utf8');
    this.aad = Buffer.alloc(E.aadLabel.length + 4 + name.length + header.length + 9);
    let at = this.aad.write(E.aadLabel, 0, 'ascii');
    at = this.aad.writeUInt32LE(name.length, at);
    at += name.copy(this.aad, at);
    this.tailAt = at + header.copy(this.aad, at);
  }

  at(index: number): this {
    this.nonce.writeBigUInt64LE(BigInt(index), 0);
    this.aad.writeBigUInt64LE(BigInt(index), this.tailAt);
    this.aad.writeUInt8(index === this.count - 1 ? 1 : 0, this.tailAt + 8);
    return this;
  }
}

/** dst (src.length + tagBytes) gets the chunk's ciphertext, then its tag. */
export function sealChunk(key: Buffer, nonce: Buffer, aad: Buffer, src: Buffer, dst: Buffer): void {
  if (native) return native.gcmSeal!(key, nonce, aad, src, dst);
  const c = createCipheriv(E.cipher, key, nonce, { authTagLength: E.tagBytes });
  c.setAAD(aad);
  let at = c.update(src).copy(dst, 0);
  at += c.final().copy(dst, at);
  c.getAuthTag().copy(dst, at);
}

/** src is a chunk's ciphertext then tag; dst (tagBytes shorter) gets the plaintext. False if not authentic. */
function openChunk(key: Buffer, nonce: Buffer, aad: Buffer, src: Buffer, dst: Buffer): boolean {
  if (native) return native.gcmOpen!(key, nonce, aad, src, dst);
  const plain = src.length - E.tagBytes;
  const d = createDecipheriv(E.cipher, key, nonce, { authTagLength: E.tagBytes });
  d.setAAD(aad);
  d.setAuthTag(src.subarray(plain));
  try {
    const at = d.update(src.subarray(0, plain)).copy(dst, 0);
    d.final().copy(dst, at);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether openChunksInto may open chunks in place (out = stored's own first bytes): the fallbacks
 * below can; the addon can if it says so (one built before could not).
 */
export const canOpenInPlace = !native?.gcmOpenChunks || native.gcmOpenChunksInPlace === true;

/**
 * Opens chunks first, first+1, … (stored back to back, their layout already checked) into out:
 * either a buffer apart from stored, or (canOpenInPlace) stored's own first bytes, which saves a
 * fresh buffer per read (its page faults cost half as much as the decryption, perf in a cold
 * scan). In place, stored's
 * bytes are overwritten, authentic or not: the caller throws them away on a failure.
 * With the addon, on the threadpool: a scan's next chunk is opened while the event loop checks
 * the blocks of the one before. Resolves with -1, or the first chunk (from 0) not authentic.
 */
export function openChunksInto(key: Buffer, p: ChunkParams, first: number, stored: Buffer, out: Buffer): Promise<number> {
  const inPlace = out.buffer === stored.buffer && out.byteOffset === stored.byteOffset;
  if (inPlace && !canOpenInPlace) return Promise.reject(new Error('openChunksInto: this addon cannot open chunks in place'));
  if (native?.gcmOpenChunks) {
    return new Promise((resolve, reject) => {
      native.gcmOpenChunks!(key, p.at(first).aad, first, p.count, E.chunkPlainBytes, stored, out, (bad) => (bad === -2 ? reject(new Error('gcmOpenChunks: chunks and plaintext do not fit together')) : resolve(bad)));
    });
  }
  let at = 0;
  let outAt = 0;
  for (let i = first; at < stored.length; i++) {
    const plain = Math.min(E.chunkPlainBytes, out.length - outAt);
    const q = p.at(i);
    // In place: opened where it lies, then moved down over the tags before it (set() copies overlapping ranges right).
    const dst = inPlace ? stored.subarray(at, at + plain) : out.subarray(outAt, outAt + plain);
    if (!openChunk(key, q.nonce, q.aad, stored.subarray(at, at + plain + E.tagBytes), dst)) return Promise.resolve(i - first);
    if (inPlace && outAt !== at) out.set(dst, outAt);
    at += plain + E.tagBytes;
    outAt += plain;
  }
  return Promise.resolve(-1);
}
