import { createCipheriv, createDecipheriv } from 'node:crypto';
import { ENCRYPTED_OBJECT as E } from '../format/constants';
import { nativeAddon, nativeEnabled } from '../util/native-addon';

/**
 * One AES-256-GCM chunk of an encrypted archive object, sealed or opened into the caller's
 * buffer. The native addon does it in place; Node's Cipher (the fallback) hands back a fresh
 * buffer per call, copied into place here.
 */
const native = nativeEnabled && nativeAddon.gcmSeal && nativeAddon.gcmOpen ? nativeAddon : undefined;

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
export function openChunk(key: Buffer, nonce: Buffer, aad: Buffer, src: Buffer, dst: Buffer): boolean {
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
