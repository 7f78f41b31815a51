import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { Volume } from '../src/volume/volume';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

/**
 * Review observation (review2, issue 10): CloneOverlay.close() refuses new writes (check()) only once its
 * sync and markClosed are done. A write that comes in meanwhile (queued behind the closing sync)
 * still runs, after markClosed: its bytes overwrite a synced block in place, its CRC entry is
 * never persisted, and the file says it was closed cleanly, so the next open does not recover.
 * The write was acknowledged; after the reopen the block is refused (CORRUPT_BLOCK) for good.
 */
test('clone write accepted during close: after reopen the block reads as written or the write was refused, never CORRUPT_BLOCK', async () => {
  const { vol, dir } = await freshVolume(SMALL);
  let closed = false;
  try {
    await vol.sync({ label: 'one' });
    const clones = clonesOf(vol);
    await clones.create('c', 'one');
    const o = clones.overlay('c');
    const w0 = o.write(0, Buffer.alloc(BS, 0x11));
    if (w0) await w0;
    await o.sync();
    const closing = o.close();
    let acknowledged = true;
    try {
      const w = o.write(0, Buffer.alloc(BS, 0x22));
      if (w) await w;
    } catch {
      acknowledged = false;
    }
    await closing;
    await vol.close();
    closed = true;
    const again = await Volume.open(dir);
    try {
      const out = Buffer.alloc(BS);
      const r = clonesOf(again).overlay('c').readInto(out, 0, BS);
      if (r) await r;
      assert.equal(out[0].toString(16), acknowledged ? '22' : '11');
    } finally {
      await again.close();
    }
  } finally {
    if (!closed) await vol.close().catch(() => undefined);
  }
});
