import assert from 'node:assert/strict';
import * as nfs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { archiveKeyFromSecret, createKeyFile, readKeyFile } from '../src/archive/archive-key';
import { BackingStore } from '../src/archive/backing-store';
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
  assert.deepEqual(inner.ranges.map(([, , len]) => len), [ENCRYPTED_OBJECT.lengthBytes, CHUNK + ENCRYPTED_OBJECT.tagBytes]);
  // Across a chunk boundary: two chunks; the header is cached now.
  inner.ranges.length = 0;
  assert.ok((await store.getRange('o', 2 * CHUNK - 5, 10)).equals(data.subarray(2 * CHUNK - 5, 2 * CHUNK + 5)));
  assert.deepEqual(inner.ranges.map(([, , len]) => len), [2 * (CHUNK + ENCRYPTED_OBJECT.tagBytes)]);
  // The short last chunk, and the plaintext size.
  assert.ok((await store.getRange('o', data.length - 3, 3)).equals(data.subarray(data.length - 3)));
  assert.equal(await store.size('o'), data.length);
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
