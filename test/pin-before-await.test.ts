import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { forget } from '../src/retention/forget';
import { thinnableEvent } from './helpers/prune';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;


/**
 * Review finding: CloneService.create (and pin()) resolve the point, then await
 * Volume.resolveDurablePoint's flush, and only then pin it. A forget and a prune (the daemon's
 * --retention-every runs both on a timer; the control socket too) that run during that flush
 * see no pin: the forget thins the point, the prune drops the versions only it read, and the
 * clone is then made on, and pins, a point whose blocks are gone. It reads the older version
 * (0x05) where its base held 0x11, in silence.
 */
test('clone create racing a forget and prune during its flush: the clone must read its base (0x11), not an older version', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    const t = await thinnableEvent(vol, 777);
    const e1 = { id: t.e1, seq: t.e1Seq };
    const realFlush = vol.flush.bind(vol);
    let raced = false;
    // The interleaving: the scheduled forget + prune run while the create awaits its flush.
    vol.flush = async () => {
      await realFlush();
      if (raced) return;
      raced = true;
      const f = forget(vol, { keepLast: 1 });
      const p = await vol.prune();
      console.log(JSON.stringify({ forgotten: f.forgotten.map((e) => e.id), deleted: p.deleted, rewritten: p.rewritten, versionsDropped: p.versionsDropped }));
    };
    const info = await clonesOf(vol).create('c', String(e1.id));
    assert.ok(raced);
    assert.equal(info.seq, e1.seq);
    const out = Buffer.alloc(BS);
    const r = clonesOf(vol).overlay('c').readInto(out, 0, BS);
    if (r) await r;
    assert.equal(out[0].toString(16), '11', `clone c of event ${e1.id} reads block 0 as 0x${out[0].toString(16)}, its base held 0x11`);
  } finally {
    await vol.close();
  }
});

/**
 * The same window in rollback (rollback.ts): the target is resolved, then `await volume.sync()`
 * records the before-event, and only then is the target pinned. A forget and prune during that
 * sync thin the target; rollback then writes the thinned target's reads (older versions) into
 * live: live becomes a state the volume never had.
 */
test('rollback racing a forget and prune during its before-event sync: live must become the target (0x11), not an older version', async () => {
  const { rollback } = await import('../src/rollback/rollback');
  const { vol } = await freshVolume(SMALL);
  try {
    const t = await thinnableEvent(vol, 778);
    const e1 = { id: t.e1, seq: t.e1Seq };
    const realSync = vol.sync.bind(vol);
    let raced = false;
    vol.sync = async (o) => {
      const e = await realSync(o);
      if (!raced) {
        raced = true;
        forget(vol, { keepLast: 1 });
        await vol.prune();
      }
      return e;
    };
    await rollback(vol, { to: String(e1.id) });
    assert.ok(raced);
    const live = await vol.read(0, BS);
    assert.equal(live[0].toString(16), '11', `after rollback to event ${e1.id}, live block 0 is 0x${live[0].toString(16)}, the target held 0x11`);
  } finally {
    await vol.close();
  }
});

/**
 * The general form: an edge that resolved a point and keeps reading it (an NBD export attached
 * to an event: its Point is resolved once at the handshake, nbd-exports.ts; a FUSE handle on
 * events/<name>/volume.img; an export --at or diff in progress) is never re-checked and holds
 * nothing. A forget and a prune meanwhile drop the versions only that point read, and its reads
 * then return the older versions, with no error.
 */
test('a point held by a reader (as an NBD export holds it) across a forget and prune: its reads must not return another point\'s bytes', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    const t = await thinnableEvent(vol, 779);
    const e1 = { id: t.e1, seq: t.e1Seq };
    const held = vol.resolvePoint(String(e1.id));
    assert.equal((await vol.read(0, BS, held))[0], 0x11);
    forget(vol, { keepLast: 1 });
    await vol.prune();
    let got: Buffer | undefined;
    try {
      got = await vol.read(0, BS, held);
    } catch {
      return; // refused: acceptable
    }
    assert.equal(got[0].toString(16), '11', `the reader of event ${e1.id} now reads block 0 as 0x${got[0].toString(16)} with no error; its point held 0x11`);
  } finally {
    await vol.close();
  }
});
