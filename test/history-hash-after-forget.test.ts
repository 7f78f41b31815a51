import assert from 'node:assert/strict';
import { test } from 'node:test';
import { historyOf } from '../src/investigate/queries';
import { forget } from '../src/retention/forget';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

/**
 * Review3 repro (issue 10, rule 25 follow-up): history --hash reads each listed version through
 * a point of its own seq ({ seqLimit: v.seq }, no event). Since reads re-check held points
 * (Volume.checkHeld), a version before the continuous span whose seq is no kept event's or
 * pin's is refused (POINT_FORGOTTEN), though the index still holds it and the read would
 * return exactly it: here block 0's live version (0x22), which no forget or prune can take.
 */
test('history --hash after a forget hashes the versions still held (live\'s own version at least)', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    await vol.write(0, Buffer.alloc(BS, 0x11));
    await vol.sync({ label: 'e0' });
    await vol.write(0, Buffer.alloc(BS, 0x22)); // block 0's live version
    await vol.write(BS, Buffer.alloc(BS, 0x33));
    await vol.sync({ label: 'e1' });
    await vol.write(2 * BS, Buffer.alloc(BS, 0x44));
    await vol.sync({ label: 'last' });
    forget(vol, { keepLast: 1 });
    const h = await historyOf(vol, 0, BS, true).then((r) => r, (e: { code?: string; message?: string }) => e);
    assert.ok(!('code' in h), `history --hash of block 0 refused: ${(h as { message?: string }).message}`);
    const live = (h as Awaited<ReturnType<typeof historyOf>>).versions.at(-1)!;
    assert.ok(live.sha256, 'live version hashed');
  } finally {
    await vol.close().catch(() => undefined);
  }
});
