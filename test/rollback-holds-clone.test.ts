import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { rollback } from '../src/rollback/rollback';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

/**
 * Review observation (review2, issue 10): rollback --to clone:<name> takes no hold on the clone (only a pin
 * of its base). A clone delete while the rollback awaits its before-event sync goes through
 * (nothing is held), and the rollback then fails after its intent is durable: the intent names
 * a clone that no longer exists, so it can never be finished (UNKNOWN_CLONE) and every other
 * rollback is refused (ROLLBACK_UNFINISHED).
 */
test('rollback to clone:<name> racing the clone\'s delete: either the delete is refused or the rollback completes/leaves no intent', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    await vol.write(0, Buffer.alloc(BS, 0x11));
    await vol.sync({ label: 'one' });
    const clones = clonesOf(vol);
    await clones.create('c', 'one');
    const w = clones.overlay('c').write(0, Buffer.alloc(BS, 0xcc));
    if (w) await w;
    await vol.write(0, Buffer.alloc(BS, 0x22));
    await vol.sync({ label: 'two' });
    // The interleaving: the delete runs (whole) while the rollback awaits its before-event sync.
    const realSync = vol.sync.bind(vol);
    let deleted: boolean | undefined;
    vol.sync = async (o) => {
      const e = await realSync(o);
      if (deleted === undefined) deleted = await clones.delete('c').then(() => true, () => false);
      return e;
    };
    const rolled = await rollback(vol, { to: 'clone:c' }).then(() => true, (e: Error) => (console.log('rollback:', e.message), false));
    vol.sync = realSync;
    const intent = vol.rollbackIntent();
    console.log(JSON.stringify({ deleted, rolled, intent: intent?.to }));
    assert.ok(!(deleted && !rolled && intent), `the clone was deleted under the rollback, which left an intent for ${intent?.to} that can never be finished`);
    // The rollback holds the clone: the delete is refused, the rollback finishes, no intent is left.
    assert.deepEqual({ deleted, rolled, intent: intent?.to }, { deleted: false, rolled: true, intent: undefined });
  } finally {
    await vol.close().catch(() => undefined);
  }
});
