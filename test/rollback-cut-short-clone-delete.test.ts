import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { rollback } from '../src/rollback/rollback';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

/**
 * Review3 repro (issue 10, F3 follow-up): rollback --to clone:<name> holds the clone only while
 * rollback() runs. Cut short after its intent is durable (here a write into live fails; a crash
 * does the same), the hold is released in `finally` but the intent stays: clone --delete then
 * goes through, and the intent names a clone that no longer exists. Repeating the rollback is
 * refused (UNKNOWN_CLONE), any other rollback too (ROLLBACK_UNFINISHED): live stays a mix.
 */
test('a rollback to clone:<name> cut short keeps the clone: its delete is refused while the intent names it', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    await vol.write(0, Buffer.alloc(BS, 0x11));
    await vol.write(BS, Buffer.alloc(BS, 0x11));
    await vol.sync({ label: 'one' });
    const clones = clonesOf(vol);
    await clones.create('c', 'one');
    const w = clones.overlay('c').write(0, Buffer.alloc(2 * BS, 0xcc));
    if (w) await w;
    await vol.write(0, Buffer.alloc(2 * BS, 0x22));
    await vol.sync({ label: 'two' });
    // Cut short: the rollback's first write into live fails (an I/O error, ENOSPC...).
    const realWrite = vol.write.bind(vol);
    vol.write = async () => {
      throw new Error('injected write failure');
    };
    await assert.rejects(rollback(vol, { to: 'clone:c' }), /injected/);
    vol.write = realWrite;
    assert.equal(vol.rollbackIntent()?.to, 'clone:c', 'the cut-short rollback left its intent');
    const deleted = await clones.delete('c').then(() => true, (e: Error) => (console.log('delete:', e.message), false));
    const repeated = await rollback(vol, { to: 'clone:c' }).then(() => 'done', (e: { code?: string }) => e.code ?? String(e));
    const other = await rollback(vol, { to: 'one' }).then(() => 'done', (e: { code?: string }) => e.code ?? String(e));
    console.log(JSON.stringify({ deleted, repeated, other, intent: vol.rollbackIntent()?.to }));
    assert.ok(!(deleted && repeated !== 'done' && other !== 'done'), `clone deleted under a cut-short rollback: repeat -> ${repeated}, other -> ${other}; the intent for ${vol.rollbackIntent()?.to} can never be finished`);
  } finally {
    await vol.close().catch(() => undefined);
  }
});
