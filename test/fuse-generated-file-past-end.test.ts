import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeOps } from '../src/fuse/fuse-ops';
import { Tree } from '../src/fuse/tree';
import { silentLogger } from '../src/log';
import { freshVolume } from './helpers/volumes';

/**
 * Review 4, finding 6: a generated file (status.json here) is served from the bytes its handle
 * took at open; a later stat makes the file longer, so the kernel may read a handle past the end
 * of its own bytes. That read is end-of-file, not EIO.
 */
test('a read of a generated file past its handle\'s bytes is end-of-file, not EIO', async () => {
  const { vol } = await freshVolume();
  let status = Buffer.from('{"short":1}\n');
  const ops = makeOps(vol, new Tree(vol, () => status, Date.now()), { autoSyncMs: 0, log: silentLogger() });
  const call = <T extends unknown[]>(fn: (cb: (...a: T) => void) => void) => new Promise<T>((resolve) => fn((...a: T) => resolve(a)));
  try {
    const [, st1] = await call<[number, { size: number }?]>((cb) => ops.getattr!('/status.json', cb as never));
    assert.equal(st1!.size, status.length);
    const [rc, fd] = await call<[number, number?]>((cb) => ops.open!('/status.json', 0, cb));
    assert.equal(rc, 0);
    const opened = status;
    status = Buffer.from(JSON.stringify({ longer: 'x'.repeat(200) }) + '\n');
    const [, st2] = await call<[number, { size: number }?]>((cb) => ops.getattr!('/status.json', cb as never));
    assert.equal(st2!.size, status.length, 'a later stat reports the longer file');
    const buf = Buffer.alloc(64);
    assert.deepEqual(await call((cb) => ops.read!('/status.json', fd!, buf, 64, opened.length + 20, cb)), [0], 'past the handle\'s bytes: end-of-file');
    assert.deepEqual(await call((cb) => ops.read!('/status.json', fd!, buf, 64, opened.length, cb)), [0], 'at the end exactly');
    assert.deepEqual(await call((cb) => ops.read!('/status.json', fd!, buf, 64, 2, cb)), [opened.length - 2], 'inside: the rest of its own bytes');
    assert.ok(buf.subarray(0, opened.length - 2).equals(opened.subarray(2)));
  } finally {
    await vol.close();
  }
});
