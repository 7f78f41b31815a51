import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { isChronoError } from '../src/errors';
import { FILE_NAMES } from '../src/format/constants';
import { bisectPoints } from '../src/investigate/queries';
import { forget } from '../src/retention/forget';
import { listPins, pin, unpin } from '../src/retention/pins';
import { prunableVersions } from '../src/volume/prunable';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { Rng, withSeed } from './helpers/rng';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

function forgotten(fn: () => unknown): { before: string | null; after: string | null; message: string } {
  try {
    fn();
  } catch (err) {
    if (isChronoError(err, 'POINT_FORGOTTEN')) return { ...(err.details as { before: string | null; after: string | null }), message: err.message };
    throw err;
  }
  assert.fail('expected POINT_FORGOTTEN');
}

test('forget: kept events stay bit-exact, forgotten ones and thinned points answer POINT_FORGOTTEN naming the nearest kept, across a reopen', async () => {
  const rng = Rng.fromEnv();
  console.log(`seed ${rng.seed}`);
  await withSeed(rng, async () => {
    const { dir, vol: v0 } = await freshVolume(SMALL);
    let vol: Volume = v0;
    const images = new Map<number, Buffer>();
    const between: number[] = []; // a seq inside each span between events
    for (let i = 0; i < 6; i++) {
      for (let w = 0; w < 4; w++) {
        await vol.write(rng.int(SMALL.sizeBytes / BS) * BS, rng.bytes(BS * (1 + rng.int(3))).subarray(0, BS));
        if (w === 1) between.push(vol.lastSeq);
      }
      await vol.write(0, rng.bytes(BS)); // block 0 changes in every span: events 3 and 4 alone read two of its versions
      const e = await vol.sync({ label: `e${i + 1}` });
      images.set(e.id, await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(e.id))));
    }
    await pin(vol, '2', 'before the upgrade');
    const dry = forget(vol, { keepLast: 2 }, { dryRun: true });
    assert.deepEqual(dry.kept.map((e) => e.id), [2, 5, 6]);
    assert.deepEqual(dry.kept.map((e) => e.reasons), [['pin: before the upgrade'], ['last'], ['last']]);
    assert.deepEqual(dry.forgotten.map((e) => e.id), [1, 3, 4]);
    assert.equal(vol.events.length, 6, 'a dry run forgets nothing');
    vol.resolvePoint('1');
    const r = forget(vol, { keepLast: 2 });
    assert.deepEqual(r.forgotten.map((e) => e.id), [1, 3, 4]);
    assert.ok(r.prunableBytes! >= 2 * BS && r.prunableBytes! % BS === 0, `prunable bytes ${r.prunableBytes}`);
    for (let round = 0; round < 2; round++) {
      assert.deepEqual(vol.events.map((e) => e.id), [2, 5, 6]);
      const f = forgotten(() => vol.resolvePoint('3'));
      assert.match(f.before!, /^event:2 /);
      assert.match(f.after!, /^event:5 /);
      forgotten(() => vol.resolvePoint('event:1'));
      // A point between events 3 and 4 (both gone): the nearest kept are 2 and 5.
      const g = forgotten(() => vol.resolvePoint(`seq:${between[3]}`));
      assert.match(g.before!, /^event:2 /);
      assert.match(g.after!, /^event:5 /);
      // A time in the thinned span resolves to a seq there, and is refused the same way.
      const e4time = new Date(whiteBox(vol).index.times.timeOfSeq(between[3])).toISOString();
      forgotten(() => vol.resolvePoint(e4time));
      for (const id of [2, 5, 6]) assert.deepEqual(await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(id))), images.get(id), `event ${id} bit-exact`);
      assert.ok(isChronoError((() => { try { vol.resolvePoint('no-such-label'); } catch (e) { return e; } })(), 'UNKNOWN_POINT'), 'an unknown point stays UNKNOWN_POINT');
      await vol.close();
      vol = await Volume.open(dir); // replay and the manifest still carry the events; the list must not
    }
    // Unpinning lets the next forget take event 2.
    unpin(vol, '2');
    assert.deepEqual(listPins(vol), []);
    assert.deepEqual(forget(vol, { keepLast: 2 }).forgotten.map((e) => e.id), [2]);
    forgotten(() => vol.resolvePoint('2'));
    // Writes after the forget are in the continuous span: every point there resolves.
    await vol.write(0, rng.bytes(BS));
    vol.resolvePoint(`seq:${vol.lastSeq}`);
    await vol.close();
    const file = JSON.parse(fs.readFileSync(path.join(dir, FILE_NAMES.retention), 'utf8'));
    assert.deepEqual(file.forgotten, [[1, 4]]);
  });
});

test('forget: --keep-all-within keeps every point in the window, and every event in it', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) {
      await vol.write(i * BS, Buffer.alloc(BS, i + 1));
      await vol.sync({ label: `e${i + 1}` });
    }
    const mid = vol.lastSeq;
    for (let i = 0; i < 4; i++) await vol.write(i * BS, Buffer.alloc(BS, 0x40 + i));
    // "now" an hour later: a 1 h window starts just after the 4th event.
    const nowMs = vol.lastTimeMs + 3_600_000;
    const r = forget(vol, { keepLast: 1, keepAllWithinMs: 3_600_000 }, { nowMs });
    assert.ok(t0 > 0);
    assert.deepEqual(r.kept.map((e) => e.id), [4]);
    assert.ok(r.continuousFromSeq <= vol.lastSeq);
    // Every seq from the window's start on reads; one before it does not.
    for (let s = Math.max(r.continuousFromSeq, mid); s <= vol.lastSeq; s++) vol.resolvePoint(`seq:${s}`);
    forgotten(() => vol.resolvePoint(`seq:${mid - 2}`));
  } finally {
    await vol.close();
  }
});

test('pins: a clone pins its base point for its lifetime, so forget keeps it; discarding the clone releases it', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    for (let i = 0; i < 3; i++) {
      await vol.write(0, Buffer.alloc(BS, i + 1));
      await vol.sync({ label: `e${i + 1}` });
    }
    const clones = clonesOf(vol);
    await clones.create('work', 'e1');
    assert.deepEqual(listPins(vol).map((p) => [p.holder, p.point, p.reason]), [['clone:work', 'event:1', 'clone work']]);
    const r = forget(vol, { keepLast: 1 }, { dryRun: true });
    assert.deepEqual(r.kept.map((e) => [e.id, e.reasons]), [[1, ['pin: clone work']], [3, ['last']]]);
    await clones.delete('work');
    assert.deepEqual(listPins(vol), []);
    assert.deepEqual(forget(vol, { keepLast: 1 }).forgotten.map((e) => e.id), [1, 2]);
    await assert.rejects(() => clones.create('late', '1'), /POINT_FORGOTTEN|forgotten/);
    assert.deepEqual(listPins(vol), [], 'a clone that could not be made holds nothing');
    await clones.closeAll();
  } finally {
    await vol.close();
  }
});

test('prunable versions: the index walk agrees with a brute-force check of every version against every kept point (seeded)', async () => {
  const rng = Rng.fromEnv();
  console.log(`seed ${rng.seed}`);
  await withSeed(rng, async () => {
    const { vol } = await freshVolume(SMALL);
    try {
      const blocks = SMALL.sizeBytes / BS;
      for (let i = 0; i < 150; i++) {
        const b = rng.int(blocks);
        if (rng.bool(0.1)) await vol.writeZeroes(b * BS, BS);
        else await vol.write(b * BS, rng.bytes(BS));
        if (rng.bool(0.1)) await vol.sync();
      }
      const idx = whiteBox(vol).index;
      const all: Array<{ block: number; seq: number; data: boolean }> = [];
      idx.versionsInSeqRange(-1, Number.MAX_SAFE_INTEGER, (block, seq, _s, off) => all.push({ block, seq, data: off !== 0 }));
      for (let round = 0; round < 20; round++) {
        const kept = Array.from({ length: rng.int(6) }, () => rng.int(vol.lastSeq + 1));
        const from = rng.int(vol.lastSeq + 2);
        // Brute force: a version is needed if it is what some kept point (or any seq from `from` on, live included) reads.
        const needed = new Set<string>();
        const points = [...kept, ...Array.from({ length: vol.lastSeq + 1 - Math.min(from, vol.lastSeq + 1) }, (_, k) => from + k), Number.MAX_SAFE_INTEGER];
        for (let b = 0; b < blocks; b++) for (const p of points) { const l = idx.floor(b, p); if (l) needed.add(`${b}:${l.seq}`); }
        const want = all.filter((v) => !needed.has(`${v.block}:${v.seq}`));
        const expected = { versions: want.length, bytes: want.filter((v) => v.data).length * BS };
        assert.deepEqual(prunableVersions(idx, kept, from, BS), expected, `kept ${kept} from ${from}`);
        assert.deepEqual(prunableVersions(idx, kept, from, BS, { keyedSort: false }), expected, `kept ${kept} from ${from}, comparator sort`);
      }
    } finally {
      await vol.close();
    }
  });
});

test('forget under the power-loss model: a cut before any of its file-system calls leaves all events or exactly the kept ones, never a forgotten one back, kept ones bit-exact, verify clean', async () => {
  const { MemoryFileSystem } = await import('../src/storage/memory-file-system');
  const { LocalDirStore } = await import('../src/archive/local-dir-store');
  const { verifyVolume } = await import('../src/volume/verify');
  const rng = new Rng(15);
  let cuts = 0;
  for (let n = 0; ; n++) {
    const mem = new MemoryFileSystem();
    mem.mkdirp('/v');
    mem.mkdirp('/archive');
    await Volume.create('/v', { ...SMALL, archive: '/archive' }, { fs: mem, store: new LocalDirStore('/archive', mem) });
    const vol = await Volume.open('/v', { fs: mem, store: new LocalDirStore('/archive', mem) });
    const images = new Map<number, Buffer>();
    for (let i = 0; i < 6; i++) {
      for (let w = 0; w < 5; w++) await vol.write(rng.int(SMALL.sizeBytes / BS) * BS, rng.bytes(BS));
      const e = await vol.sync({ label: `e${i + 1}` });
      images.set(e.id, await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(e.id))));
    }
    await pin(vol, '2', 'held');
    // The cut leaves the log unclosed: replay re-reads every EVENT record on reopen.
    mem.armPowerCut(n);
    forget(vol, { keepLast: 2 });
    const done = !mem.cutImage;
    const disk = mem.cutImage ?? mem.cutNow();
    if (!done) cuts++;
    if (disk.exists('/v/LOCK')) disk.remove('/v/LOCK'); // its owner died with the power (same pid here)
    const v2 = await Volume.open('/v', { fs: disk, store: new LocalDirStore('/archive', disk) });
    try {
      const ids = v2.events.map((e) => e.id);
      if (done) assert.deepEqual(ids, [2, 5, 6], 'a forget that returned is durable');
      else assert.ok(JSON.stringify(ids) === '[1,2,3,4,5,6]' || JSON.stringify(ids) === '[2,5,6]', `cut at call ${n}: all or nothing, got ${ids}`);
      for (const id of [1, 3, 4]) if (!ids.includes(id)) forgotten(() => v2.resolvePoint(String(id)));
      for (const id of ids) assert.deepEqual(await v2.read(0, v2.sizeBytes, v2.resolvePoint(String(id))), images.get(id), `cut at call ${n}: event ${id} bit-exact`);
      assert.deepEqual(listPins(v2).map((p) => p.eventId), [2]);
      assert.deepEqual((await verifyVolume(whiteBox(v2))).problems, [], `cut at call ${n}: verify clean`);
    } finally {
      await v2.close();
    }
    if (done) break;
  }
  assert.ok(cuts >= 3, `the cut landed inside forget ${cuts} times`);
});

test('bisect --writes after a forget lists only whole points: the thinned writes between a pinned good and a kept bad are no candidates, the pinned seq among them is', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    await vol.write(0, Buffer.alloc(BS, 1));
    await vol.sync({ label: 'good' });
    const writes: number[] = [];
    for (let i = 0; i < 6; i++) {
      await vol.write((i % 3) * BS, Buffer.alloc(BS, 0x10 + i));
      writes.push(vol.lastSeq);
    }
    await vol.sync({ label: 'middle' });
    for (let i = 0; i < 3; i++) await vol.write(i * BS, Buffer.alloc(BS, 0x30 + i));
    await vol.sync({ label: 'bad' });
    await pin(vol, 'good', 'the last good state');
    await pin(vol, `seq:${writes[2]}`, 'a write kept on purpose');
    forget(vol, { keepLast: 1 });
    const span = bisectPoints(vol, 'good', 'bad', true);
    for (const p of span.points) vol.resolvePoint(p.name); // every candidate is a point bisect can clone
    assert.deepEqual(span.points.map((p) => p.name), [`seq:${writes[2]}`, span.bad.name]);
    assert.deepEqual(bisectPoints(vol, 'good', 'bad', false).points.map((p) => p.name), [span.bad.name], 'the forgotten middle event is no candidate either');
  } finally {
    await vol.close();
  }
});
