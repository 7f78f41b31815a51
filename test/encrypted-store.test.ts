import assert from 'node:assert/strict';
import * as nfs from 'node:fs';
import * as path from 'node:path';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { archiveKeyFromSecret, createKeyFile, readKeyFile } from '../src/archive/archive-key';
import { BackingStore } from '../src/archive/backing-store';
import { encodeHeader, objectKey, sealStream } from '../src/archive/encrypted-object';
import { EncryptedStore } from '../src/archive/encrypted-store';
import { MemoryStore } from '../src/archive/memory-store';
import { archiveSettings, openStore } from '../src/archive/open-store';
import { isChronoError } from '../src/errors';
import { ENCRYPTED_OBJECT } from '../src/format/constants';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

const key = archiveKeyFromSecret(Buffer.alloc(32, 1));
const otherKey = archiveKeyFromSecret(Buffer.alloc(32, 2));
const CHUNK = ENCRYPTED_OBJECT.chunkPlainBytes;

/** Records the ranged reads that reach the inner store. */
class CountingStore extends MemoryStore {
  readonly ranges: Array<[string, number, number]> = [];
  override async getRange(k: string, offset: number, length: number): Promise<Buffer> {
    this.ranges.push([k, offset, length]);
    return super.getRange(k, offset, length);
  }
}

async function sealed(data: Buffer): Promise<{ inner: MemoryStore; store: EncryptedStore }> {
  const inner = new MemoryStore();
  const store = new EncryptedStore(inner, key);
  await store.put('segments/00000001.cvseg', data);
  return { inner, store };
}

/** A fresh wrapper over the same objects: no header cached, as after a restart. */
const reopen = (inner: BackingStore, k = key) => new EncryptedStore(inner, k);

test('encryption: what the inner store holds is not the plaintext; the same data sealed twice differs', async () => {
  const data = new Rng(1).bytes(3 * CHUNK + 100);
  const { inner, store } = await sealed(data);
  const first = inner.objects.get('segments/00000001.cvseg')!;
  assert.equal(first.indexOf(data.subarray(1000, 1032)), -1, 'no plaintext run in the stored object');
  assert.equal(first.length, ENCRYPTED_OBJECT.lengthBytes + data.length + 4 * ENCRYPTED_OBJECT.tagBytes);
  await store.put('segments/00000001.cvseg', data);
  const second = inner.objects.get('segments/00000001.cvseg')!;
  assert.equal(second.length, first.length);
  assert.ok(!second.subarray(ENCRYPTED_OBJECT.lengthBytes).equals(first.subarray(ENCRYPTED_OBJECT.lengthBytes)), 'a re-upload is sealed under a new salt, so a new key and new nonces');
  assert.ok((await reopen(inner).get('segments/00000001.cvseg')).equals(data));
});

test('encryption: a ranged read fetches the header and only the chunks it touches', async () => {
  const data = new Rng(2).bytes(16 * CHUNK + 7);
  const inner = new CountingStore();
  await new EncryptedStore(inner, key).put('o', data);
  const store = reopen(inner);
  const at = 5 * CHUNK + 10;
  assert.ok((await store.getRange('o', at, 4096)).equals(data.subarray(at, at + 4096)));
  assert.deepEqual(inner.ranges.map(([, o, len]) => [o, len]).sort((a, b) => a[0] - b[0]), [[0, ENCRYPTED_OBJECT.lengthBytes], [ENCRYPTED_OBJECT.lengthBytes + 5 * (CHUNK + ENCRYPTED_OBJECT.tagBytes), CHUNK + ENCRYPTED_OBJECT.tagBytes]]);
  // Across a chunk boundary: two chunks; the header is cached now.
  inner.ranges.length = 0;
  assert.ok((await store.getRange('o', 2 * CHUNK - 5, 10)).equals(data.subarray(2 * CHUNK - 5, 2 * CHUNK + 5)));
  assert.deepEqual(inner.ranges.map(([, , len]) => len), [2 * (CHUNK + ENCRYPTED_OBJECT.tagBytes)]);
  // The short last chunk, and the plaintext size.
  assert.ok((await store.getRange('o', data.length - 3, 3)).equals(data.subarray(data.length - 3)));
  assert.equal(await store.size('o'), data.length);
});

/** A MemoryStore whose ranged reads wait while it is shut: shows which requests a read has in flight at once. */
class HeldStore extends CountingStore {
  private held: Array<() => void> = [];
  private shut = false;
  override async getRange(k: string, offset: number, length: number): Promise<Buffer> {
    const p = super.getRange(k, offset, length);
    if (this.shut) await new Promise<void>((resolve) => this.held.push(resolve));
    return p;
  }
  /** Runs `read` with requests held until no more come; then lets them all (and any later) go. How many were held at once, and the result. */
  async inFlight<T>(read: () => Promise<T>): Promise<{ together: number; result: T }> {
    this.shut = true;
    const p = read();
    p.catch(() => undefined);
    let together = 0;
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setImmediate(r));
      together = Math.max(together, this.held.length);
    }
    this.shut = false;
    for (const go of this.held.splice(0)) go();
    return { together, result: await p };
  }
}

test('encryption: an uncached header costs no round trip of its own: read with chunks near it, beside chunks farther in; a short final chunk still reads right', async () => {
  const data = new Rng(12).bytes(16 * CHUNK + 7);
  const inner = new HeldStore();
  await new EncryptedStore(inner, key).put('o', data);
  const T = ENCRYPTED_OBJECT.tagBytes;
  const H = ENCRYPTED_OBJECT.lengthBytes;
  // Near the start (a segment's first record): header and chunks 0-1 in one request.
  inner.ranges.length = 0;
  let r = await inner.inFlight(() => reopen(inner).getRange('o', 100, CHUNK));
  assert.ok(r.result.equals(data.subarray(100, 100 + CHUNK)));
  assert.deepEqual(inner.ranges.map(([, o, len]) => [o, len]), [[0, H + 2 * (CHUNK + T)]]);
  // Farther in: both requests are in flight together (not header, then chunks).
  inner.ranges.length = 0;
  r = await inner.inFlight(() => reopen(inner).getRange('o', 7 * CHUNK + 5, 10));
  assert.ok(r.result.equals(data.subarray(7 * CHUNK + 5, 7 * CHUNK + 15)));
  assert.equal(inner.ranges.length, 2);
  assert.equal(r.together, 2, 'header and chunk requested together');
  // The short final chunk, header uncached: the whole-chunk guess comes up short, then the header places it.
  for (const [from, n] of [[data.length - 3, 3], [3, data.length - 3]]) {
    assert.ok((await reopen(inner).getRange('o', from, n)).equals(data.subarray(from, from + n)), `${n} bytes at ${from}`);
  }
  // A flipped byte in the header read with the chunks: refused by its CRC, nothing served.
  const bad = Buffer.from(inner.objects.get('o')!);
  bad[ENCRYPTED_OBJECT.off.plainLength] ^= 1;
  inner.objects.set('o', bad);
  await assert.rejects(reopen(inner).getRange('o', 0, 10), (e) => isChronoError(e, 'BAD_CHECKSUM'));
});

test('encryption: chunks are opened in place, in the buffer the inner store returned (no second buffer), and a chunk that fails serves nothing', async () => {
  const data = new Rng(13).bytes(5 * CHUNK + 9);
  const returned: Buffer[] = [];
  class Keeping extends MemoryStore {
    override async getRange(k: string, offset: number, length: number): Promise<Buffer> {
      const b = await super.getRange(k, offset, length);
      returned.push(b);
      return b;
    }
  }
  const inner = new Keeping();
  const store = new EncryptedStore(inner, key);
  await store.put('o', data);
  for (const [at, n] of [[0, data.length], [CHUNK - 3, 3 * CHUNK], [4 * CHUNK + 1, CHUNK + 8]]) {
    returned.length = 0;
    const got = await store.getRange('o', at, n);
    assert.ok(got.equals(data.subarray(at, at + n)), `${n} bytes at ${at}`);
    assert.equal(got.buffer, returned[0].buffer, `${n} bytes at ${at}: a view of the stored bytes' buffer, opened in place`);
  }
  // The last of three chunks altered: the read fails whole, though two chunks opened in place first.
  const b = Buffer.from(inner.objects.get('o')!);
  b[ENCRYPTED_OBJECT.lengthBytes + 2 * (CHUNK + ENCRYPTED_OBJECT.tagBytes) + 7] ^= 0x10;
  inner.objects.set('o', b);
  await assert.rejects(store.getRange('o', 0, 3 * CHUNK), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'));
  await assert.rejects(reopen(inner).get('o'), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'));
  assert.ok((await store.getRange('o', 0, 2 * CHUNK)).equals(data.subarray(0, 2 * CHUNK)), 'the chunks before it still read');
});

test('encryption: a wrong key is refused with ARCHIVE_WRONG_KEY, by reads and by the factory', async () => {
  const { inner } = await sealed(Buffer.from('secret data'));
  const wrong = reopen(inner, otherKey);
  await assert.rejects(wrong.get('segments/00000001.cvseg'), (e) => isChronoError(e, 'ARCHIVE_WRONG_KEY'));
  await assert.rejects(wrong.getRange('segments/00000001.cvseg', 0, 3), (e) => isChronoError(e, 'ARCHIVE_WRONG_KEY'));
  await assert.rejects(wrong.size('segments/00000001.cvseg'), (e) => isChronoError(e, 'ARCHIVE_WRONG_KEY'));
  // A key file that is not the one config.json names.
  const dir = tmpDir();
  const { settings } = archiveSettings({ archive: path.join(dir, 'a'), keyFile: path.join(dir, 'k1'), newKey: true });
  createKeyFile(path.join(dir, 'k2'));
  assert.throws(() => openStore({ ...settings, encryption: { ...settings.encryption!, keyFile: path.join(dir, 'k2') } }, { create: true }), (e) => isChronoError(e, 'ARCHIVE_WRONG_KEY'));
});

test('encryption: a flipped byte anywhere is refused (ARCHIVE_AUTH_FAILED in a chunk, BAD_CHECKSUM in the header)', async () => {
  const data = new Rng(3).bytes(2 * CHUNK + 5);
  const { inner } = await sealed(data);
  const orig = inner.objects.get('segments/00000001.cvseg')!;
  const positions = [ENCRYPTED_OBJECT.lengthBytes + 1, ENCRYPTED_OBJECT.lengthBytes + CHUNK + 3 /* a tag */, orig.length - 1, ENCRYPTED_OBJECT.off.salt + 2];
  for (const p of positions) {
    const b = Buffer.from(orig);
    b[p] ^= 0x04;
    inner.objects.set('segments/00000001.cvseg', b);
    const code = p < ENCRYPTED_OBJECT.lengthBytes ? 'BAD_CHECKSUM' : 'ARCHIVE_AUTH_FAILED';
    await assert.rejects(reopen(inner).get('segments/00000001.cvseg'), (e) => isChronoError(e, code), `byte ${p}: whole get`);
    await assert.rejects(reopen(inner).getRange('segments/00000001.cvseg', 0, data.length), (e) => isChronoError(e, code), `byte ${p}: ranged get`);
  }
  // A header with a consistent CRC but another salt (someone who knows the format): chunks fail.
  const forged = Buffer.from(orig);
  forged[ENCRYPTED_OBJECT.off.salt] ^= 1;
  const { crc32c } = await import('../src/format/crc');
  forged.writeUInt32LE(crc32c(forged.subarray(0, ENCRYPTED_OBJECT.off.crc)), ENCRYPTED_OBJECT.off.crc);
  inner.objects.set('segments/00000001.cvseg', forged);
  await assert.rejects(reopen(inner).get('segments/00000001.cvseg'), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'));
});

test('encryption: objects swapped under each other\'s names, or chunks swapped inside one, are refused with ARCHIVE_AUTH_FAILED', async () => {
  const inner = new MemoryStore();
  const store = new EncryptedStore(inner, key);
  const a = new Rng(4).bytes(2 * CHUNK);
  const b = new Rng(5).bytes(2 * CHUNK);
  await store.put('segments/00000001.cvseg', a);
  await store.put('segments/00000002.cvseg', b);
  const oa = inner.objects.get('segments/00000001.cvseg')!;
  inner.objects.set('segments/00000001.cvseg', inner.objects.get('segments/00000002.cvseg')!);
  inner.objects.set('segments/00000002.cvseg', oa);
  for (const k of ['segments/00000001.cvseg', 'segments/00000002.cvseg']) {
    await assert.rejects(reopen(inner).get(k), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'), k);
    await assert.rejects(reopen(inner).getRange(k, CHUNK, 10), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'), k);
  }
  // The two chunks of one object exchanged.
  const s = ENCRYPTED_OBJECT.lengthBytes;
  const c = CHUNK + ENCRYPTED_OBJECT.tagBytes;
  inner.objects.set('segments/00000003.cvseg', Buffer.concat([oa.subarray(0, s), oa.subarray(s + c), oa.subarray(s, s + c)]));
  await assert.rejects(reopen(inner).get('segments/00000003.cvseg'), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'));
});

test('encryption: a truncated object is refused with ARCHIVE_AUTH_FAILED (whole chunks cut, or part of one)', async () => {
  const data = new Rng(6).bytes(3 * CHUNK + 1000);
  const { inner } = await sealed(data);
  const orig = inner.objects.get('segments/00000001.cvseg')!;
  for (const cut of [1000 + ENCRYPTED_OBJECT.tagBytes /* the whole last chunk */, 10, 1000 + ENCRYPTED_OBJECT.tagBytes + CHUNK + ENCRYPTED_OBJECT.tagBytes]) {
    inner.objects.set('segments/00000001.cvseg', orig.subarray(0, orig.length - cut));
    await assert.rejects(reopen(inner).get('segments/00000001.cvseg'), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'), `cut ${cut}: get`);
    await assert.rejects(reopen(inner).size('segments/00000001.cvseg'), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'), `cut ${cut}: size`);
    await assert.rejects(reopen(inner).getRange('segments/00000001.cvseg', data.length - 10, 10), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'), `cut ${cut}: range`);
  }
});

test('encryption: an empty object is sealed and authenticated too', async () => {
  const { inner, store } = await sealed(Buffer.alloc(0));
  assert.equal((await store.get('segments/00000001.cvseg')).length, 0);
  const orig = inner.objects.get('segments/00000001.cvseg')!;
  inner.objects.set('segments/00000001.cvseg', orig.subarray(0, ENCRYPTED_OBJECT.lengthBytes));
  await assert.rejects(reopen(inner).get('segments/00000001.cvseg'), (e) => isChronoError(e, 'ARCHIVE_AUTH_FAILED'));
});

test('key file: created 0600, never overwritten, read back to the same key id; config records the id, never the secret', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'vol.key');
  const k = createKeyFile(file);
  assert.equal(nfs.statSync(file).mode & 0o777, 0o600);
  assert.equal(readKeyFile(file).keyId, k.keyId);
  assert.throws(() => createKeyFile(file), (e) => isChronoError(e, 'EXISTS'));
  nfs.writeFileSync(path.join(dir, 'bad.key'), 'not hex\n');
  assert.throws(() => readKeyFile(path.join(dir, 'bad.key')), (e) => isChronoError(e, 'BAD_ARGUMENT'));
  const { settings } = archiveSettings({ archive: path.join(dir, 'arch'), keyFile: file });
  assert.deepEqual(settings.encryption, { cipher: 'aes-256-gcm', keyFile: file, keyId: k.keyId });
  assert.ok(!JSON.stringify(settings).includes(k.secret.toString('hex')));
});

/**
 * The format as docs/FORMAT.md gives it, written with Node's Cipher one chunk at a time: what
 * the engine seals (with the native addon or without) must open here, and the reverse.
 */
function referenceSeal(name: string, plain: Buffer): Buffer {
  const salt = randomBytes(ENCRYPTED_OBJECT.saltBytes);
  const header = encodeHeader(plain.length, key.keyId, salt);
  const objKey = objectKey(key.secret, salt);
  const count = Math.max(1, Math.ceil(plain.length / CHUNK));
  const out = [header];
  for (let i = 0; i < count; i++) {
    const c = createCipheriv('aes-256-gcm', objKey, referenceNonce(i), { authTagLength: 16 });
    c.setAAD(referenceAad(name, header, i, i === count - 1));
    out.push(c.update(plain.subarray(i * CHUNK, (i + 1) * CHUNK)), c.final(), c.getAuthTag());
  }
  return Buffer.concat(out);
}

function referenceOpen(name: string, stored: Buffer): Buffer {
  const header = stored.subarray(0, ENCRYPTED_OBJECT.lengthBytes);
  const plainLength = Number(header.readBigUInt64LE(ENCRYPTED_OBJECT.off.plainLength));
  const objKey = objectKey(key.secret, header.subarray(ENCRYPTED_OBJECT.off.salt, ENCRYPTED_OBJECT.off.salt + ENCRYPTED_OBJECT.saltBytes));
  const count = Math.max(1, Math.ceil(plainLength / CHUNK));
  const out: Buffer[] = [];
  let at = ENCRYPTED_OBJECT.lengthBytes;
  for (let i = 0; i < count; i++) {
    const n = Math.min(CHUNK, plainLength - i * CHUNK);
    const d = createDecipheriv('aes-256-gcm', objKey, referenceNonce(i), { authTagLength: 16 });
    d.setAAD(referenceAad(name, header, i, i === count - 1));
    d.setAuthTag(stored.subarray(at + n, at + n + 16));
    out.push(d.update(stored.subarray(at, at + n)), d.final());
    at += n + 16;
  }
  assert.equal(at, stored.length);
  return Buffer.concat(out);
}

function referenceNonce(i: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64LE(BigInt(i));
  return n;
}

function referenceAad(name: string, header: Buffer, i: number, final: boolean): Buffer {
  const nameBytes = Buffer.from(name);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(nameBytes.length);
  const tail = Buffer.alloc(9);
  tail.writeBigUInt64LE(BigInt(i));
  tail[8] = final ? 1 : 0;
  return Buffer.concat([Buffer.from(ENCRYPTED_OBJECT.aadLabel, 'ascii'), len, nameBytes, header, tail]);
}

test(`encryption: objects sealed here and by Node's Cipher per the spec open each other's (native addon ${process.env.CHRONOVOL_NATIVE === '0' ? 'off' : 'on'})`, async () => {
  const rng = Rng.fromEnv();
  console.log(`seed ${rng.seed}`);
  for (const length of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 17 * CHUNK + 5, 40 * CHUNK]) {
    const plain = rng.bytes(length);
    const name = `segments/${length}`;
    const inner = new MemoryStore();
    inner.objects.set(name, referenceSeal(name, plain));
    assert.ok((await reopen(inner).get(name)).equals(plain), `reference-sealed ${length} bytes`);
    // Uneven parts: chunks that straddle them are gathered.
    const cut = rng.int(length + 1);
    await reopen(inner).put(name, [plain.subarray(0, cut), plain.subarray(cut)]);
    assert.ok(referenceOpen(name, inner.objects.get(name)!).equals(plain), `sealed here, ${length} bytes cut at ${cut}`);
    // Sealed whole into a buffer of the store's own (as the S3 store gathers an object).
    const whole = sealStream(name, key.secret, key.keyId, [plain.subarray(0, cut), plain.subarray(cut)]);
    const out = Buffer.alloc(whole.totalBytes, 0xee);
    whole.into(out);
    assert.ok(referenceOpen(name, out).equals(plain), `sealed into one buffer, ${length} bytes cut at ${cut}`);
  }
});

test('encryption: a local-dir put of a large object in uneven parts (two write buffers taking turns) reads back whole, sealed and plain', async () => {
  const rng = Rng.fromEnv();
  console.log(`seed ${rng.seed}`);
  const dir = tmpDir();
  const plain = Buffer.allocUnsafe(19 * 1024 * 1024 + 12345);
  for (let i = 0; i < plain.length; i += 4096) rng.bytes(4096).copy(plain, i);
  const parts: Buffer[] = [];
  for (let at = 0; at < plain.length; ) {
    const n = Math.min(plain.length - at, 1 + rng.int(3 << 20));
    parts.push(plain.subarray(at, at + n));
    at += n;
  }
  const keyFile = path.join(dir, 'k');
  const stores = [openStore({ archive: path.join(dir, 'plain') }, { create: true }), openStore(archiveSettings({ archive: path.join(dir, 'sealed'), keyFile, newKey: true }).settings, { create: true })];
  for (const s of stores) {
    await s.put('segments/00000007', parts);
    assert.ok((await s.get('segments/00000007')).equals(plain), s.description);
    assert.ok((await s.getRange('segments/00000007', 5 * CHUNK + 3, 3 * CHUNK)).equals(plain.subarray(5 * CHUNK + 3, 8 * CHUNK + 3)), s.description);
  }
});
