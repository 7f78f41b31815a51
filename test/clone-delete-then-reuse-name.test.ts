import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

/**
 * Review finding (review2, issue 10): CloneService.delete checks `held`, drops the overlay from `open` and
 * then awaits its close (a sync: fdatasyncs) before renaming the directory away. An attach in
 * that window (a FUSE open of clones/<name>/volume.img, or an NBD client of clone/<name> whose
 * handshake ends then: both take hold() and overlay() synchronously) finds the directory still
 * there, opens the old clone's files again and caches that overlay in `open`. The delete goes on
 * (it never looks at `held` again), and a clone made later under the same name is served through
 * the stale overlay: the deleted clone's blocks, at the deleted clone's (unpinned) base.
 */
test('clone deleted while an attach reopens it: a clone made again under the name must read its own image, not the deleted one', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    await vol.write(0, Buffer.alloc(BS, 0x11));
    await vol.sync({ label: 'one' });
    const clones = clonesOf(vol);
    await clones.create('c', 'one');
    const w = clones.overlay('c').write(0, Buffer.alloc(BS, 0xee));
    if (w) await w;
    await clones.overlay('c').sync();
    // The delete runs up to its first await (the overlay's close); an attach then comes in, as
    // fuse-ops open / nbd-server do: hold, then overlay.
    const deleting = clones.delete('c');
    let release: (() => void) | undefined;
    let attached = true;
    try {
      release = clones.hold('c');
      clones.overlay('c');
    } catch {
      attached = false; // refused (hold or overlay): fine
    }
    await deleting.catch(() => undefined);
    release?.();
    if (clones.exists('c')) return; // the delete was refused: fine
    await vol.write(0, Buffer.alloc(BS, 0x22));
    await vol.sync({ label: 'two' });
    await clones.create('c', 'two');
    const out = Buffer.alloc(BS);
    const r = clones.overlay('c').readInto(out, 0, BS);
    if (r) await r;
    assert.equal(out[0].toString(16), '22', `new clone c (of 'two', block 0 = 0x22) reads 0x${out[0].toString(16)} (attached during delete: ${attached})`);
  } finally {
    await vol.close().catch(() => undefined);
  }
});
