import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { FaultyStore } from '../src/archive/faulty-store';
import { HEADER_BYTES, unitBytes } from '../src/format/record';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { isChronoError } from '../src/errors';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { Rng, withSeed } from './helpers/rng';
import { tmpDir } from './helpers/tmp';
import { VolumeModel } from './helpers/volume-model';
import { SMALL } from './helpers/volumes';

// Archive outage (issue 14): while the archive is down, sealed segments wait in primary beyond
// the working set, up to --archive-backlog, and writes go on; past it a write waits up to
// --archive-stall-timeout (a delay, not an error) and then fails with ARCHIVE_BACKLOG_FULL
// (ENOSPC at the edges); when the archive is back the backlog drains by itself, oldest first,
// primary returns to K + 1, and everything written is in the archive. Real files and a real
// local archive, behind a fault injector.

const SEG = SMALL.segmentSizeBytes!;
const BACKLOG = 3;
const STALL_MS = 3000;

async function until(what: string, cond: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('archive outage: writes go on into the backlog, then wait, then fail with ARCHIVE_BACKLOG_FULL; the store back, the backlog drains, primary returns to K + 1 and recover from the archive brings back every event', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const root = tmpDir();
    const dir = path.join(root, 'vol');
    const archive = path.join(root, 'archive');
    await Volume.create(dir, { ...SMALL, archive });
    const store = new FaultyStore(new LocalDirStore(archive));
    const vol = await Volume.open(dir, { store, archiveBacklogBytes: BACKLOG * SEG, archiveStallTimeoutMs: STALL_MS });
    const model = new VolumeModel(SMALL.sizeBytes);
    const k = whiteBox(vol).sb.workingSetSegments;
    const blocks = SMALL.sizeBytes / 4096;
    const inPrimary = () => whiteBox(vol).segments.count;
    let events = 0;
    const write = async () => {
      const off = rng.int(blocks - 4) * 4096;
      const data = rng.bytes(4096 * (1 + rng.int(4)));
      await vol.write(off, data);
      model.write(off, data);
      if (rng.int(8) === 0) {
        const e = await vol.sync({ label: `e${events++}` });
        model.snapshot(e.seq);
        model.acknowledge(e);
      }
    };
    // Healthy: past turnover, primary stays at K + 1.
    while (whiteBox(vol).segments.current.id < 3 * k) await write();
    await whiteBox(vol).archiver.idle();
    assert.ok(inPrimary() <= k + 1);
    assert.equal((await vol.status()).archive.state, 'ok');
    assert.equal((await vol.status()).segments.primaryLimit, k + 1 + BACKLOG);

    // The archive goes down: writes go on (no error, no stall) until the backlog is full.
    store.unreachable = true;
    let peak = inPrimary();
    let sawRetrying = false;
    for (let i = 0; inPrimary() < k + 1 + BACKLOG; i++) {
      assert.ok(i < 5000, 'the backlog fills');
      const t0 = Date.now();
      await write(); // throws if the outage stopped writes before the backlog is full
      assert.ok(Date.now() - t0 < STALL_MS / 2, 'a write within the backlog does not wait for the archive');
      peak = Math.max(peak, inPrimary());
      if ((await vol.status()).archive.state === 'retrying') sawRetrying = true;
    }
    assert.ok(sawRetrying, 'status shows the archive retrying while writes go on');
    const down = await vol.status();
    assert.ok(down.archive.failingSince, 'status names when the outage began');
    assert.match(down.archive.error ?? '', /unreachable/);
    assert.ok(down.archive.backlog.segments >= BACKLOG - 1 && down.archive.backlog.bytes > 0, JSON.stringify(down.archive.backlog));
    assert.ok(down.archive.oldestUnarchivedSeconds >= 0);

    // Past the backlog: the write that needs a rollover waits the stall timeout, then fails.
    let refused: unknown;
    let waitedMs = 0;
    for (let i = 0; i < 5000 && refused === undefined; i++) {
      const t0 = Date.now();
      try {
        await write();
      } catch (err) {
        refused = err;
        waitedMs = Date.now() - t0;
      }
      peak = Math.max(peak, inPrimary());
    }
    assert.ok(isChronoError(refused, 'ARCHIVE_BACKLOG_FULL'), `writes stopped with ${String(refused)}`);
    assert.ok(waitedMs >= STALL_MS - 20, `the refused write waited the stall timeout first (${waitedMs} ms)`);
    assert.equal(peak, k + 1 + BACKLOG, 'primary never held more than K + 1 + backlog segments');
    assert.equal((await vol.status()).archive.state, 'backlog-full');

    // A write that waits while the archive comes back is delayed, not failed. (The first writes
    // may still fit the current segment: the one not answered within 200 ms is the waiting one.)
    let pending: Promise<void> | undefined;
    let t0 = 0;
    for (let i = 0; i < 5000 && !pending; i++) {
      const off = rng.int(blocks - 2) * 4096;
      const data = rng.bytes(8192);
      t0 = Date.now();
      const p = vol.write(off, data).then(() => model.write(off, data));
      if (!(await Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]))) pending = p;
    }
    assert.ok(pending, 'a write waits for the archive');
    let waitingSeen = false;
    for (let i = 0; i < 10 && !waitingSeen; i++) {
      waitingSeen = (await vol.status()).archive.writesWaitingSince !== null;
      if (!waitingSeen) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(waitingSeen, 'status shows a write waiting for the archive');
    await new Promise((r) => setTimeout(r, STALL_MS / 3));
    store.unreachable = false;
    await pending;
    assert.ok(Date.now() - t0 >= STALL_MS / 3, 'that write was delayed');

    // The backlog drains by itself (no more writes): primary back to K + 1, nothing awaiting.
    await until('the backlog to drain', async () => {
      const s = await vol.status();
      return s.archive.state === 'ok' && s.segments.awaitingArchive.length === 0 && s.segments.inPrimary <= k + 1;
    });
    const after = await vol.status();
    assert.equal(after.archive.backlog.segments, 0);
    assert.equal(after.archive.error, null);
    assert.ok((await vol.read(0, SMALL.sizeBytes)).equals(model.live), 'live is every acknowledged write');
    for (let i = 0; i < 50; i++) await write();
    const e = await vol.sync({ label: 'last' });
    model.snapshot(e.seq);
    model.acknowledge(e);
    assert.deepEqual((await vol.verify()).problems, []);
    const eventsBefore = vol.events.map((x) => ({ id: x.id, seq: x.seq }));
    await vol.close();

    // Everything the archive took comes back from it alone, each event bit-exact.
    const target = path.join(root, 'recovered');
    const report = await recoverFromArchive(archive, target);
    assert.equal(report.missing, undefined);
    const v = await Volume.open(target);
    const archivedEvents = eventsBefore.filter((x) => x.seq <= report.lastSeq);
    assert.ok(archivedEvents.length >= events - 2, `recovered ${v.events.length} of ${eventsBefore.length} events`);
    for (const x of archivedEvents) {
      const img = await v.read(0, SMALL.sizeBytes, v.resolvePoint(String(x.id)));
      assert.ok(img.equals(model.atSeq.get(x.seq)!), `event ${x.id} (seq ${x.seq}) bit-exact`);
    }
    await v.close();
  });
});

test('archive outage: a write refused with ARCHIVE_BACKLOG_FULL leaves its range as it was, also one whose first record fit before the rollover it waited for', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  await Volume.create(dir, { ...SMALL, archive });
  const store = new FaultyStore(new LocalDirStore(archive));
  const backlog = 2;
  const vol = await Volume.open(dir, { store, archiveBacklogBytes: backlog * SEG, archiveStallTimeoutMs: 300 });
  const core = whiteBox(vol);
  const bs = 4096;
  const record = (blocks: number) => HEADER_BYTES + blocks * unitBytes(bs);
  assert.equal(core.maxBlocksPerRecord, 3, 'a 4-block write is two records here');
  // Blocks 8-11 hold 0xaa; block 0 takes the churn, so copy-forward stays small.
  await vol.write(8 * bs, Buffer.alloc(4 * bs, 0xaa));
  store.unreachable = true;
  let n = 0;
  while (core.leaving.length <= core.backlog.segments) await vol.write(0, Buffer.alloc(bs, ++n & 0xff));
  // The backlog is full: the next rollover waits. Fill the current segment until a 4-block
  // write's first record (3 blocks) fits but its second (1 block) does not.
  while (core.segments.current.remaining() >= record(3) + record(1)) await vol.write(0, Buffer.alloc(bs, ++n & 0xff));
  assert.ok(core.segments.current.remaining() >= record(3), `room for the first record (${core.segments.current.remaining()} bytes)`);

  const refused = await vol.write(8 * bs, Buffer.alloc(4 * bs, 0x55)).then(() => undefined, (err: unknown) => err);
  assert.ok(isChronoError(refused, 'ARCHIVE_BACKLOG_FULL'), `refused: ${String(refused)}`);
  const range = await vol.read(8 * bs, 4 * bs);
  assert.ok(range.equals(Buffer.alloc(4 * bs, 0xaa)), `blocks 8-11 kept 0xaa (block 8 holds 0x${range[0].toString(16)})`);

  store.unreachable = false;
  await vol.write(8 * bs, Buffer.alloc(4 * bs, 0x55));
  assert.ok((await vol.read(8 * bs, 4 * bs)).equals(Buffer.alloc(4 * bs, 0x55)), 'the archive back, the same write goes through');
  await vol.close();
});
