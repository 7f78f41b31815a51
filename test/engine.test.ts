import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FaultyStore } from '../src/archive/faulty-store';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { recoverFromArchive } from '../src/volume/recover';
import { isChronoError } from '../src/errors';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { MemoryStore } from '../src/archive/memory-store';
import { OpenOptions, Volume } from '../src/volume/volume';
import { Rng, withSeed } from './helpers/rng';
import { tmpDir } from './helpers/tmp';
import { VolumeModel } from './helpers/volume-model';
import { SMALL, churn, freshVolume } from './helpers/volumes';
import { whiteBox } from '../src/volume/white-box';

/** A volume on an in-memory file system behind a fault injector, with an in-memory archive. */
async function faultyMemoryVolume(): Promise<{ mem: MemoryFileSystem; ffs: FaultyFileSystem; store: MemoryStore; vol: Volume }> {
  const mem = new MemoryFileSystem();
  const ffs = new FaultyFileSystem(mem);
  const store = new MemoryStore();
  mem.mkdirp('/v');
  await Volume.create('/v', SMALL, { fs: ffs, store });
  return { mem, ffs, store, vol: await Volume.open('/v', { fs: ffs, store }) };
}

test('bad input gets a clear error and loses nothing', async () => {
  const { dir, vol } = await freshVolume();
  await vol.write(0, Buffer.from('keep me'));
  await vol.sync({ label: 'a' });
  await assert.rejects(vol.write(SMALL.sizeBytes - 2, Buffer.alloc(4)), (e) => isChronoError(e, 'OUT_OF_RANGE'));
  await assert.rejects(vol.read(SMALL.sizeBytes, 1), (e) => isChronoError(e, 'OUT_OF_RANGE'));
  await assert.rejects(vol.write(-1, Buffer.alloc(1)), (e) => isChronoError(e, 'BAD_ARGUMENT'));
  assert.throws(() => vol.resolvePoint('no-such-label'), (e) => isChronoError(e, 'UNKNOWN_POINT'));
  assert.throws(() => vol.resolvePoint('seq:999999'), (e) => isChronoError(e, 'UNKNOWN_POINT'));
  assert.throws(() => vol.resolvePoint('1999-01-01T00:00:00Z'), (e) => isChronoError(e, 'UNKNOWN_POINT'));
  assert.throws(() => vol.resolvePoint('2026-13-45T99:00:00Z'), (e) => isChronoError(e, 'UNKNOWN_POINT'));
  assert.throws(() => vol.resolvePoint(new Date(Date.now() + 3_600_000).toISOString()), (e) => isChronoError(e, 'UNKNOWN_POINT') && /future/.test((e as Error).message));
  await assert.rejects(Volume.open(dir), (e) => isChronoError(e, 'LOCKED'), 'a second opener is refused');
  await assert.rejects(Volume.create(dir, SMALL), (e) => isChronoError(e, 'EXISTS'));
  assert.equal((await vol.read(0, 7)).toString(), 'keep me');
  await vol.close();
  await assert.rejects(Volume.open(tmpDir()), (e) => isChronoError(e, 'NOT_A_VOLUME'));
  for (const bad of [{ sizeBytes: 1000 }, { sizeBytes: 4096, blockSizeBytes: 1000 }, { sizeBytes: 1 << 20, segmentSizeBytes: 100 }, { sizeBytes: 1 << 30, segmentSizeBytes: 1 << 20, workingSetSegments: 10 }]) {
    await assert.rejects(Volume.create(path.join(tmpDir(), 'v'), bad), (e) => isChronoError(e, 'BAD_ARGUMENT'), JSON.stringify(bad));
  }
  const again = await Volume.open(dir);
  assert.equal((await again.read(0, 7, again.resolvePoint('a'))).toString(), 'keep me');
  await again.close();
});

test('a stale lock from a dead process is taken over', async () => {
  const { dir, vol } = await freshVolume();
  await vol.close();
  fs.writeFileSync(path.join(dir, 'LOCK'), JSON.stringify({ pid: 2 ** 22 + 12345 }));
  const v = await Volume.open(dir);
  await v.close();
});

test('points: event id, label, seq and ISO time all resolve to the right state', async () => {
  const { vol } = await freshVolume();
  await vol.write(0, Buffer.alloc(4096, 1));
  const e1 = await vol.sync({ label: 'one' });
  await new Promise((r) => setTimeout(r, 15));
  const between = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 15));
  await vol.write(0, Buffer.alloc(4096, 2));
  const e2 = await vol.sync({ label: 'two' });
  const first = async (p: string) => (await vol.read(0, 1, vol.resolvePoint(p)))[0];
  assert.equal(await first('one'), 1);
  assert.equal(await first(String(e1.id)), 1);
  assert.equal(await first(`seq:${e1.seq}`), 1);
  assert.equal(await first(between), 1);
  assert.equal(await first('two'), 2);
  assert.equal(await first(`seq:${e2.seq}`), 2);
  assert.equal(await first('live'), 2);
  assert.equal(await first('seq:0'), 0);
  await vol.close();
});

test('fixed working set: primary never exceeds K + 1 segments; live exports bit-exact with the archive gone', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const { dir, vol, archive } = await freshVolume();
    const model = new VolumeModel(SMALL.sizeBytes);
    const k = (await vol.status()).volume.workingSetSegments;
    for (let round = 0; round < 30; round++) {
      await churn(vol, model, rng, 10);
      const segs = fs.readdirSync(path.join(dir, 'segments')).length;
      assert.ok(segs <= k + 1, `primary holds ${segs} segments, limit ${k + 1}`);
    }
    const st = await vol.status();
    assert.ok(st.archive.segments! > 5, 'history went to the archive');
    assert.ok(st.log.copyForwardWriteAmp < 1.5, `copy-forward write amplification ${st.log.copyForwardWriteAmp}`);
    await vol.close();
    fs.renameSync(archive, `${archive}.away`);
    const v = await Volume.open(dir);
    assert.ok((await v.read(0, SMALL.sizeBytes)).equals(model.live), 'live from the working set alone');
    await v.close();
    fs.renameSync(`${archive}.away`, archive);
  });
});

test('archive size: each written block version is archived once, plus its copies when linked (≤ 1.05 x bytes written + copied + metadata)', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const { vol, archive } = await freshVolume();
    const model = new VolumeModel(SMALL.sizeBytes);
    // Block-aligned 4 KiB..64 KiB writes: bytes written = block versions x block size.
    for (let i = 0; i < 600; i++) {
      const blocks = 1 + rng.int(16);
      const first = rng.int(SMALL.sizeBytes / 4096 - blocks);
      const data = rng.bytes(blocks * 4096);
      await vol.write(first * 4096, data);
      model.write(first * 4096, data);
    }
    const st = await vol.status();
    const archivedBytes = fs.readdirSync(path.join(archive, 'segments')).reduce((n, f) => n + fs.statSync(path.join(archive, 'segments', f)).size, 0);
    assert.ok(st.log.copyForwardBytes > 0, 'copy-forward happened');
    // The archive cannot exceed what was written plus per-record metadata (64 B header + 4 B CRC a
    // block + 8 B table entry). A local archive on the same file system holds each sealed segment
    // as a hard link (no byte stored twice while it is in primary), copies included.
    const copied = st.archive.location.startsWith('dir:') ? st.log.copyForwardBytes : 0;
    assert.ok(archivedBytes <= (st.log.bytesWritten + copied) * 1.05 + 4096, `archive ${archivedBytes} vs written ${st.log.bytesWritten} + copied ${copied}`);
    await vol.close();
  });
});

test('disaster recovery: delete primary, recover from the archive, every archived event exports bit-exact', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const { dir, vol, archive } = await freshVolume();
    const model = new VolumeModel(SMALL.sizeBytes);
    await churn(vol, model, rng, 300, 7);
    const eventsBefore = [...vol.events];
    await vol.close();
    // Primary is gone from where it was: recovery has the archive alone. The original is kept
    // aside only to say what the archive's last state was (no seq is skipped by the check).
    const aside = path.join(tmpDir(), 'original');
    fs.renameSync(dir, aside);
    const target = path.join(tmpDir(), 'recovered');
    const report = await recoverFromArchive(archive, target);
    assert.ok(report.events > 3, `recovered ${report.events} events`);
    assert.equal(report.missing, undefined);
    // Read-only: the recovered volume archives on in the same archive, so the original is now
    // another history's copy, which the archive fence refuses for writing (DESIGN rule 29).
    const original = await Volume.open(aside, { readOnly: true });
    const expectedLive = await original.read(0, SMALL.sizeBytes, original.resolvePoint(`seq:${report.lastSeq}`));
    await original.close();
    fs.rmSync(aside, { recursive: true });
    const v = await Volume.open(target);
    assert.equal(v.events.length, report.events);
    for (const e of v.events) {
      const before = eventsBefore.find((x) => x.id === e.id)!;
      assert.equal(before.seq, e.seq);
      assert.ok((await v.read(0, SMALL.sizeBytes, v.resolvePoint(String(e.id)))).equals(model.atSeq.get(e.seq)!), `event ${e.id}`);
    }
    const last = v.events[v.events.length - 1];
    assert.equal(v.lastSeq, report.lastSeq + 1, 'the recovered history, then the LOST record (DESIGN rule 27)');
    assert.ok(report.lastSeq >= last.seq);
    if (report.lastSeq === last.seq) assert.ok(expectedLive.equals(model.atSeq.get(last.seq)!), 'the original agrees with the model');
    assert.ok((await v.read(0, SMALL.sizeBytes)).equals(expectedLive), `live is the archived state at seq ${report.lastSeq}`);
    assert.ok((await v.verify()).ok, 'recovered volume verifies');
    // It is a working volume: writes continue.
    await v.write(0, Buffer.alloc(4096, 7));
    await v.sync({ label: 'after-recovery' });
    await v.close();
  });
});

test('a write error stops the writer; reopened, every synced byte is intact', async () => {
  const { mem, ffs, store, vol } = await faultyMemoryVolume();
  await vol.write(0, Buffer.alloc(8192, 3));
  await vol.sync({ label: 'safe' });
  ffs.failWhen = (op, p) => op === 'write' && p.includes('segments');
  await vol.write(8192, Buffer.alloc(4096, 4)).catch(() => undefined); // buffered; fails at flush
  await assert.rejects(vol.flush(), (e) => isChronoError(e, 'IO'));
  ffs.failWhen = () => false;
  await assert.rejects(vol.write(0, Buffer.alloc(1)), (e) => isChronoError(e, 'WRITER_FAILED'), 'refuses further writes');
  await vol.close();
  mem.crash();
  const again = await Volume.open('/v', { fs: mem, store });
  assert.ok((await again.read(0, 8192, again.resolvePoint('safe'))).equals(Buffer.alloc(8192, 3)));
  await again.write(0, Buffer.alloc(4096, 5));
  await again.close();
});

/** A small in-memory volume whose archive is an in-memory store behind a fault injector. */
async function faultyStoreVolume(o: OpenOptions = {}): Promise<{ store: FaultyStore; vol: Volume; model: VolumeModel }> {
  const fsys = new MemoryFileSystem();
  const store = new FaultyStore(new MemoryStore());
  fsys.mkdirp('/v');
  await Volume.create('/v', SMALL, { fs: fsys, store });
  return { store, vol: await Volume.open('/v', { fs: fsys, store, ...o }), model: new VolumeModel(SMALL.sizeBytes) };
}

test('an archive upload that reads back wrong is not trusted: the primary copy stays', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    // No backlog, no stall: the first rollover past K + 1 fails at once.
    const { store, vol, model } = await faultyStoreVolume({ archiveBacklogBytes: 0, archiveStallTimeoutMs: 0 });
    store.corruptPuts = true;
    let refused = false;
    try {
      await churn(vol, model, rng, 400);
    } catch (err) {
      assert.ok(isChronoError(err, 'ARCHIVE_BACKLOG_FULL'), String(err));
      refused = true;
    }
    assert.ok(refused, 'writes stop once the working set is full and nothing can be archived');
    const st = await vol.status();
    assert.ok(st.segments.inPrimary <= st.volume.workingSetSegments + 1);
    assert.match(st.archive.error ?? '', /reads back different/);
    // The archive heals: turnover resumes and history is complete.
    store.corruptPuts = false;
    await churn(vol, model, rng, 100);
    assert.ok((await vol.verify()).ok);
    await vol.close();
  });
});

test('turnover archives in the background: the write that made room does not wait for the upload, the next rollover does, and reads are served meanwhile', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const { store, vol, model } = await faultyStoreVolume({ archiveBacklogBytes: 0 });
    let release!: () => void;
    store.holdPuts = new Promise<void>((r) => (release = r));
    const segmentPuts = () => store.putsStarted.filter((k) => k.startsWith('segments/'));
    const blocks = SMALL.sizeBytes / 4096;
    let doneWhileHeld = 0;
    let waiting: { write: Promise<void>; off: number; data: Buffer } | undefined;
    for (let i = 0; i < 2000 && !waiting; i++) {
      const off = rng.int(blocks) * 4096;
      const data = rng.bytes(4096);
      const write = vol.write(off, data);
      const settled = await Promise.race([write.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 200))]);
      if (!settled) {
        waiting = { write, off, data };
        break;
      }
      model.write(off, data);
      if (segmentPuts().length > 0) doneWhileHeld++;
    }
    assert.equal(segmentPuts().length, 1, 'one upload started and held');
    assert.ok(doneWhileHeld > 0, 'writes went on while the upload was held');
    assert.ok(waiting, 'the next rollover waits for the held upload');
    const st = await vol.status();
    assert.equal(st.segments.inPrimary, st.volume.workingSetSegments + 1, 'the leaving segment stays in primary until archived');
    assert.equal(st.archive.segments, 0, 'nothing is archived yet');
    assert.ok((await vol.read(0, SMALL.sizeBytes)).equals(model.live), 'reads are served while the upload is held');
    release();
    store.holdPuts = undefined;
    await waiting.write;
    model.write(waiting.off, waiting.data);
    await churn(vol, model, rng, 200);
    assert.ok((await vol.read(0, SMALL.sizeBytes)).equals(model.live));
    assert.deepEqual((await vol.verify()).problems, []);
    await vol.close();
  });
});

test('verify passes on a healthy volume with history in the archive', async () => {
  const rng = Rng.fromEnv();
  const { vol } = await freshVolume(SMALL, { store: undefined });
  await churn(vol, new VolumeModel(SMALL.sizeBytes), rng, 200);
  const r = await vol.verify();
  assert.deepEqual(r.problems, []);
  assert.ok(r.checked.archivedSegments > 0 && r.checked.indexEntries > 0);
  await vol.close();
});

test('LocalDirStore is what init configures', async () => {
  const { vol, archive } = await freshVolume();
  assert.equal(whiteBox(vol).store.description, new LocalDirStore(archive).description);
  await vol.close();
});

test('regression: a record still fits after the turnover that made room for it filled the new segment (seed 596363808)', async () => {
  const rng = new Rng(596363808);
  const { vol } = await freshVolume();
  for (let i = 0; i < 600; i++) {
    const blocks = 1 + rng.int(16);
    const first = rng.int(SMALL.sizeBytes / 4096 - blocks);
    await vol.write(first * 4096, rng.bytes(blocks * 4096));
  }
  assert.ok((await vol.verify()).ok);
  await vol.close();
});

test('an fsync that fails in the background (a segment being sealed) fails the next flush and stops the writer', async () => {
  const { mem, ffs, store, vol } = await faultyMemoryVolume();
  await vol.write(0, Buffer.alloc(4096, 1));
  await vol.sync({ label: 'safe' });
  ffs.failWhen = (op, p) => op === 'sync' && p.endsWith('00000001.cvseg');
  // Fill segment 1 so it is sealed; its background fdatasync fails.
  for (let i = 0; i < 20; i++) await vol.write((i % 60) * 4096, Buffer.alloc(4096, 2)).catch(() => undefined);
  await assert.rejects(vol.flush(), (e) => isChronoError(e, 'IO') || isChronoError(e, 'WRITER_FAILED'));
  await assert.rejects(vol.write(0, Buffer.alloc(1)), (e) => isChronoError(e, 'WRITER_FAILED'));
  await vol.close();
  ffs.failWhen = () => false;
  mem.crash();
  const again = await Volume.open('/v', { fs: mem, store });
  assert.ok((await again.read(0, 4096, again.resolvePoint('safe'))).equals(Buffer.alloc(4096, 1)));
  await again.close();
});

test('a read whose bytes are not in the OS cache is looked up once: finished on the threadpool, cached, not taken for a scan', async () => {
  const mem = new MemoryFileSystem();
  const ffs = new FaultyFileSystem(mem);
  const store = new MemoryStore();
  mem.mkdirp('/v');
  await Volume.create('/v', { sizeBytes: 4 << 20, blockSizeBytes: 4096, segmentSizeBytes: 1 << 20 }, { fs: ffs, store });
  const vol = await Volume.open('/v', { fs: ffs, store, cacheBytes: 1 << 20 });
  try {
    const data = Buffer.alloc(2 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i, i);
    await vol.write(0, data); // the first megabyte's segment is sealed by the second
    await vol.sync({ label: 'a' });
    ffs.coldCache = true;
    const out = Buffer.alloc(128 * 1024);
    const pending = vol.readIntoNow(out, 0, out.length);
    assert.ok(pending instanceof Promise, 'not cached: the rest comes later');
    await pending;
    assert.ok(out.equals(data.subarray(0, out.length)));
    let st = (await vol.status()).cache;
    assert.equal(st.misses, 32, 'each block looked up once');
    assert.equal(st.entries, 32, 'a random read, not a scan: its blocks are cached');
    out.fill(0);
    // Through the event (another image, so no scan either): the same versions, from the cache.
    assert.equal(vol.readIntoNow(out, 0, out.length, vol.resolvePoint('a')), undefined, 'from the block cache, at once');
    assert.ok(out.equals(data.subarray(0, out.length)));
    st = (await vol.status()).cache;
    assert.equal(st.hits, 32);
  } finally {
    await vol.close();
  }
});
