import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { archiveKeyFromSecret } from '../src/archive/archive-key';
import { EncryptedStore } from '../src/archive/encrypted-store';
import { MemoryStore } from '../src/archive/memory-store';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const key = archiveKeyFromSecret(Buffer.alloc(32, 3));

async function collected(ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 10 && ref.deref(); i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return ref.deref() === undefined;
}

/**
 * Review finding (review2): EncryptedStore caches each object's header (1024 of them) as
 * decodeHeader returned it, and decodeHeader's `raw` is a view of the buffer it was cut from. In
 * a first ranged read (readFirst, new: header and chunks in one request) and in get() (the
 * archiver's read-back of every archived segment, prune, verify, recover) that buffer is the
 * whole read, now also the plaintext handed to the caller (opened in place): the cache keeps
 * ~1 MiB per object a scan touched first, and a whole object (64 MiB segments) per get().
 */
test('encrypted store: a cached header does not keep the buffer of the read it came with (ranged first read, and get)', async () => {
  const inner = new MemoryStore();
  await new EncryptedStore(inner, key).put('segments/00000001.cvseg', [Buffer.alloc(4 << 20, 1)]);
  const store = new EncryptedStore(inner, key);
  let ranged: Buffer | undefined = await store.getRange('segments/00000001.cvseg', 0, 1 << 20);
  const rangedRef = new WeakRef(ranged.buffer);
  ranged = undefined;
  assert.ok(await collected(rangedRef), 'the 1 MiB first ranged read is still referenced (by the header cache) after the caller dropped it');
  let whole: Buffer | undefined = await store.get('segments/00000001.cvseg');
  const wholeRef = new WeakRef(whole.buffer);
  whole = undefined;
  assert.ok(await collected(wholeRef), 'the whole object read by get() is still referenced (by the header cache) after the caller dropped it');
});
