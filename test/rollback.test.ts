import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { clonesOf } from '../src/clone/clone-service';
import { isChronoError } from '../src/errors';
import { forget } from '../src/retention/forget';
import { listPins } from '../src/retention/pins';
import { retentionRequest } from '../src/retention/retention-requests';
import { rollback } from '../src/rollback/rollback';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { liveUsersOf } from '../src/service/live-users';
import { Volume } from '../src/volume/volume';
import { Rng, withSeed } from './helpers/rng';
import { seedsFor } from './helpers/seeds';
import { freshVolume } from './helpers/volumes';

const MiB = 1 << 20;
const BS = 4096;

function differingBlocks(a: Buffer, b: Buffer): number {
  let n = 0;
  for (let at = 0; at < a.length; at += BS) if (a.compare(b, at, at + BS, at, at + BS) !== 0) n++;
  return n;
}

/** Rewrites `count` random blocks of live (a few with zeros or a trim) so it moves on from its last event. */
async function scatter(vol: Volume, rng: Rng, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const b = rng.int(vol.sizeBytes / BS);
    const r = rng.next();
    if (r < 0.1) await vol.writeZeroes(b * BS, BS, rng.bool());
    else await vol.write(b * BS, rng.bytes(BS));
  }
}

/** A seeded volume filled with random bytes and an event `label`; closed (its clones first) after `body`. */
async function withFilledVolume(sizeBytes: number, label: string, body: (vol: Volume, rng: Rng) => Promise<void>): Promise<void> {
  const rng = Rng.fromEnv();
  console.log(`seed ${rng.seed}`);
  await withSeed(rng, async () => {
    const { vol } = await freshVolume({ sizeBytes, blockSizeBytes: BS, segmentSizeBytes: MiB });
    try {
      await vol.write(0, rng.bytes(sizeBytes));
      await vol.sync({ label });
      await body(vol, rng);
    } finally {
      await clonesOf(vol).closeAll();
      await vol.close();
    }
  });
}

test('rollback: live becomes the event, writing only the blocks that differ; rolling back to the event before gives back the original bytes', async () => {
  await withFilledVolume(4 * MiB, 'target', async (vol, rng) => {
    const target = await vol.read(0, vol.sizeBytes);
    await scatter(vol, rng, 60);
    // Some blocks rewritten with the bytes they had: listed by the index diff, not written.
    for (let i = 0; i < 10; i++) {
      const b = rng.int(vol.sizeBytes / BS);
      await vol.write(b * BS, await vol.read(b * BS, BS));
    }
    const original = await vol.read(0, vol.sizeBytes);
    const differ = differingBlocks(original, target);
    assert.ok(differ > 0);

    const r = await rollback(vol, { to: 'target' });
    assert.deepEqual(await vol.read(0, vol.sizeBytes), target, 'live is the target');
    assert.equal(r.writtenBlocks, differ, 'exactly the blocks that differ are written');
    assert.ok(r.comparedBlocks >= differ && r.comparedBlocks <= 70, `compared ${r.comparedBlocks}: what the index lists, not the volume`);
    assert.equal(r.resumed, false);
    assert.equal(r.to, 'event:1');
    assert.deepEqual(await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(r.before.id))), original, 'the event before holds the state left');
    assert.deepEqual(await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(r.after.id))), target, 'the event after holds the target');
    assert.equal(vol.events.find((e) => e.id === r.after.id)!.kind, 'app', 'after a rollback to an app event, live is that app-consistent state');
    assert.equal((await vol.status()).rollbackUnfinished, null);
    assert.ok(listPins(vol).some((p) => p.seq === r.before.seq && p.holder.startsWith('rollback:')), 'the state left is pinned: no forget drops the undo point');
    const undoPin = listPins(vol).find((p) => p.seq === r.before.seq && p.holder.startsWith('rollback:'))!;
    assert.throws(() => retentionRequest(vol, { op: 'unpin', point: `event:${r.before.id}`, holder: 'clone:x' }), (e) => isChronoError(e, 'BAD_USAGE'));
    retentionRequest(vol, { op: 'unpin', point: `event:${r.before.id}`, holder: undoPin.holder });
    assert.ok(!listPins(vol).some((p) => p.holder === undoPin.holder), 'the undo pin can be given up by hand (unpin --holder)');
    retentionRequest(vol, { op: 'pin', point: `event:${r.before.id}`, reason: 'kept for the undo below' });

    const undo = await rollback(vol, { to: String(r.before.id), label: 'undo' });
    assert.deepEqual(await vol.read(0, vol.sizeBytes), original, 'the rollback of the rollback gives back the original bytes');
    assert.equal(undo.writtenBlocks, differ);
    assert.equal(undo.after.label, 'undo');
    assert.equal(undo.before.label, 'before-undo');
    await assert.rejects(rollback(vol, { to: 'live' }), (e) => isChronoError(e, 'BAD_ARGUMENT'));
  });
});

test('rollback --to clone:<name> promotes the clone (its overlay and the history since its base); refused while live is held, unless forced', async () => {
  await withFilledVolume(2 * MiB, 'base', async (vol, rng) => {
    const clones = clonesOf(vol);
    await clones.create('fix', 'base');
    const o = clones.overlay('fix');
    for (let i = 0; i < 20; i++) {
      const p = o.write(rng.int(vol.sizeBytes - 9000), rng.bytes(1 + rng.int(9000)));
      if (p) await p;
    }
    await o.sync();
    await scatter(vol, rng, 30); // live moves on from the clone's base too
    const want = Buffer.alloc(vol.sizeBytes);
    const p = o.readInto(want, 0, vol.sizeBytes);
    if (p) await p;

    const release = liveUsersOf(vol).openedForWrite();
    const detach = liveUsersOf(vol).attachedNbd();
    await assert.rejects(rollback(vol, { to: 'clone:fix' }), (e) => isChronoError(e, 'LIVE_IN_USE') && /open for writing through the tree/.test(e.message) && /NBD client is attached/.test(e.message));
    release();
    await assert.rejects(rollback(vol, { to: 'clone:fix' }), (e) => isChronoError(e, 'LIVE_IN_USE') && !/through the tree/.test(e.message));
    const r = await rollback(vol, { to: 'clone:fix', force: true });
    detach();
    assert.deepEqual(await vol.read(0, vol.sizeBytes), want, 'live is the clone');
    assert.equal(r.to, 'clone:fix');
    assert.equal(r.clone, 'fix');
    await assert.rejects(rollback(vol, { to: 'clone:nope' }), (e) => isChronoError(e, 'UNKNOWN_CLONE'));
  });
});

const DIR = '/v';
const ARCHIVE = '/archive';

async function openOn(mem: MemoryFileSystem): Promise<Volume> {
  return Volume.open(DIR, { fs: mem, store: new LocalDirStore(ARCHIVE, mem) });
}

/**
 * Fixed seeds, run every time, plus one random seed (test/helpers/seeds.ts). 3739747196,
 * 3901418062, 3293539657 and 2655655588 cut the rollback's last sync before its fdatasync, with
 * write-back that kept the SYNC record's page and lost an earlier one: reopening failed with
 * CORRUPT_LOG while the SYNC record went out with the bytes it named (docs/DESIGN.md,
 * "Acknowledged bytes are never cut", rule 4; test/sync-point-order.test.ts).
 */
const POWER_LOSS_CORPUS = [3739747196, 3901418062, 3293539657, 2655655588];

for (const { seed, source } of seedsFor(POWER_LOSS_CORPUS)) {
  test(`rollback under the power-loss model: a cut at every step leaves live as it was, as the target, or flagged; repeating the rollback finishes it (seed ${seed}, ${source})`, async () => {
    const rng = new Rng(seed);
    console.log(`seed ${rng.seed}`);
    await withSeed(rng, async () => {
      // A small volume whose history crosses segments and the archive (64 KiB segments).
      const size = 256 * 1024;
      const setup = new MemoryFileSystem();
      setup.mkdirp(DIR);
      setup.mkdirp(ARCHIVE);
      await Volume.create(DIR, { sizeBytes: size, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024, archive: ARCHIVE }, { fs: setup, store: new LocalDirStore(ARCHIVE, setup) });
      let vol = await openOn(setup);
      await vol.write(0, rng.bytes(size));
      await vol.sync({ label: 'target' });
      const target = await vol.read(0, size);
      await scatter(vol, rng, 24);
      await vol.sync({ label: 'other' });
      await scatter(vol, rng, 8);
      const before = await vol.read(0, size);
      await vol.close();
      const base = setup.cutNow(); // the disk after a clean close: everything durable

      // How many counted file-system calls an uncut rollback makes: each is a cut point.
      const probe = base.cutNow();
      vol = await openOn(probe);
      const start = probe.callCount;
      await rollback(vol, { to: 'target' });
      const total = probe.callCount - start;
      await vol.close();
      assert.ok(total > 10, `a rollback makes ${total} counted calls`);

      const outcomes = { asWas: 0, target: 0, flagged: 0 };
      const step = Math.max(1, Math.floor(total / 40));
      for (let k = 0; k <= total; k += k < 12 ? 1 : step) {
        const disk = base.cutNow();
        vol = await openOn(disk);
        const reorder = rng.bool() ? { reorder: () => rng.next() } : {};
        if (k < total) disk.armPowerCut(k, reorder);
        const run = await rollback(vol, { to: 'target' }).then(() => undefined, (e: unknown) => e);
        if (k >= total) disk.cutNow(reorder); // the moment it was acknowledged
        assert.ok(disk.cutImage, `cut ${k} of ${total} happened`);
        await vol.close().catch(() => undefined); // the dead process's view
        void run;

        // The dead owner's LOCK (made durable by the intent's directory fsync): on a real disk
        // its kernel lock died with it; here its pid is ours, and alive.
        if (disk.cutImage.exists(`${DIR}/LOCK`)) disk.cutImage.remove(`${DIR}/LOCK`);
        const after = await openOn(disk.cutImage);
        try {
          const live = await after.read(0, size);
          const flagged = (await after.status()).rollbackUnfinished;
          const context = `(cut before call ${k} of ${total}, seed ${rng.seed})`;
          if (flagged) {
            outcomes.flagged++;
            const b = after.events.find((e) => e.id === flagged.beforeEvent.id);
            assert.ok(b && b.seq === flagged.beforeEvent.seq, `the intent's before-event is durable ${context}`);
            assert.deepEqual(await after.read(0, size, after.resolvePoint(String(b.id))), before, `the before-event holds the state left ${context}`);
            await assert.rejects(rollback(after, { to: 'other' }), (e) => isChronoError(e, 'ROLLBACK_UNFINISHED'), `another target waits ${context}`);
          } else if (live.equals(before)) outcomes.asWas++;
          else {
            assert.deepEqual(live, target, `live is as it was, the target, or flagged ${context}`);
            outcomes.target++;
          }
          const r = await rollback(after, { to: 'target' });
          assert.equal(r.resumed, Boolean(flagged), `a flagged rollback is finished, not restarted ${context}`);
          assert.deepEqual(await after.read(0, size), target, `the repeated rollback finishes it ${context}`);
          assert.equal((await after.status()).rollbackUnfinished, null);
          await rollback(after, { to: String(r.before.id) });
          if (!flagged) assert.deepEqual(await after.read(0, size), live, `undo gives back what live was ${context}`);
        } finally {
          await after.close();
        }
      }
      console.log(`cut points over ${total} calls: ${JSON.stringify(outcomes)}`);
      assert.ok(outcomes.flagged > 0 && outcomes.asWas > 0 && outcomes.target > 0, `every outcome was reached: ${JSON.stringify(outcomes)}`);
    });
  });
}

test('rollback cut short, then a forget: the target stays pinned while the intent is there, so repeating the rollback finishes it; once done only the undo pin is left', async () => {
  await withFilledVolume(4 * MiB, 'target', async (vol, rng) => {
    const target = await vol.read(0, vol.sizeBytes);
    await scatter(vol, rng, 60);
    await vol.sync({ label: 'later' });
    const cut = new Error('cut short');
    await assert.rejects(rollback(vol, { to: 'target', onProgress: () => { throw cut; } }), (e) => e === cut);
    assert.ok((await vol.status()).rollbackUnfinished, 'the intent is there');
    // A scheduled forget comes before the rollback is repeated: the target must survive it.
    const f = forget(vol, { keepLast: 1 });
    assert.ok(!f.forgotten.some((e) => e.label === 'target'), `forgotten: ${f.forgotten.map((e) => e.label).join(', ')}`);
    const r = await rollback(vol, { to: 'target' });
    assert.equal(r.resumed, true);
    assert.deepEqual(await vol.read(0, vol.sizeBytes), target, 'live is the target');
    assert.deepEqual(listPins(vol).map((p) => [p.holder, p.seq]), [[`rollback:${r.after.label}`, r.before.seq]], 'the target pin went with the intent; the undo point stays pinned');
  });
});
