import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ArchiveCatalog, decodeCatalog, encodeCatalog } from '../src/archive/archive-catalog';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { archiveSettings } from '../src/archive/open-store';
import { scrubArchive } from '../src/archive/archive-scrub';
import { isChronoError } from '../src/errors';
import { FILE_NAMES } from '../src/format/constants';
import { forget } from '../src/retention/forget';
import { pin } from '../src/retention/pins';
import { planSegment } from '../src/volume/prune-plan';
import { segmentLiveness } from '../src/volume/prunable';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { sealNow } from '../src/volume/turnover';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';
import { archiveSegmentBytes, hotWrites } from './helpers/prune';
import { SMALL, freshVolume } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';

const BS = 4096;

test('prune plan: delete what nothing needs, rewrite past the threshold, keep the rest, events always stay', () => {
  const rec = (seq: number, type = 1, bytes = 4128) => ({ seq, type, bytes });
  assert.equal(planSegment({ id: 1, objectBytes: 9000, records: [rec(1), rec(2)], neededSeqs: new Set() }, 0.5).action, 'delete');
  const r = planSegment({ id: 2, objectBytes: 13000, records: [rec(1), rec(2), rec(3)], neededSeqs: new Set([2]) }, 0.5);
  assert.equal(r.action, 'rewrite');
  assert.deepEqual(r.keptSeqs, [2]);
  assert.equal(planSegment({ id: 3, objectBytes: 13000, records: [rec(1), rec(2), rec(3)], neededSeqs: new Set([2, 3]) }, 0.5).action, 'keep');
  // An EVENT record (type 4) is needed whatever the index says: the object is rewritten, not deleted.
  const ev = planSegment({ id: 4, objectBytes: 9000, records: [rec(1), rec(2, 4, 40)], neededSeqs: new Set() }, 0.5);
  assert.equal(ev.action, 'rewrite');
  assert.deepEqual(ev.keptSeqs, [2]);
});

test('prune: the archive shrinks, kept points stay bit-exact, forgotten ones refused, verify clean, pruned versions answer VERSION_PRUNED', async () => {
  const seed = Number(process.env.CHRONOVOL_SEED ?? 1515);
  console.log(`seed ${seed}; replay with CHRONOVOL_SEED=${seed}`);
  const rng = new Rng(seed);
  const { dir, archive, vol: v0 } = await freshVolume(SMALL);
  let vol = v0;
  const model = new VolumeModel(SMALL.sizeBytes);
  try {
    const events = await hotWrites(vol, model, rng, 400);
    await pin(vol, String(events[3].id), 'test pin');
    // Archiving finishes in the background and recycles the backlog out of primary, which makes
    // more segments prune candidates: settle it first, or "prune again: nothing to do" races it.
    for (let i = 0; i < 1000 && (await vol.status()).segments.awaitingArchive.length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual((await vol.status()).segments.awaitingArchive, [], 'the archive has taken every sealed segment');
    const before = archiveSegmentBytes(archive);
    const rep = forget(vol, { keepLast: 2 });
    const kept = [...events.slice(-2), events[3]];
    assert.equal(rep.kept.length, 3);
    const versionsBefore: Array<{ seq: number; segment: number; offset: number }> = [];
    whiteBox(vol).index.versionsInSeqRange(-1, Number.MAX_SAFE_INTEGER, (_b, seq, segment, offset) => versionsBefore.push({ seq, segment, offset }));
    const pr = await vol.prune();
    assert.ok(pr.deleted.length + pr.rewritten.length > 0, JSON.stringify(pr.plan));
    assert.ok(pr.versionsDropped > 0);
    const after = archiveSegmentBytes(archive);
    assert.ok(after < before * 0.6, `archive ${before} -> ${after} bytes`);
    const check = async (v: Volume, ctx: string) => {
      for (const e of kept) assert.ok((await v.read(0, v.sizeBytes, v.resolvePoint(String(e.id)))).equals(model.atSeq.get(e.seq)!), `${ctx}: event ${e.id} bit-exact`);
      assert.ok((await v.read(0, v.sizeBytes)).equals(model.live), `${ctx}: live`);
      for (const e of events.filter((x) => !kept.includes(x))) assert.throws(() => v.resolvePoint(String(e.id)), (err) => isChronoError(err, 'POINT_FORGOTTEN'), `${ctx}: event ${e.id} refused`);
      const ver = await v.verify();
      assert.ok(ver.ok, `${ctx}: verify: ${JSON.stringify(ver.problems.slice(0, 3))}`);
    };
    await check(vol, 'after prune');
    // Every pruned version, read by its location (white-box: no point reaches it), fails: never other bytes.
    const core = whiteBox(vol);
    let refused = 0;
    for (const v of versionsBefore) {
      const e = core.catalog.entry(v.segment);
      if (!e || v.offset === 0 || core.catalog.holdsSeq(v.segment, v.seq)) continue;
      await assert.rejects(core.archive.read(v.segment, v.offset, BS), (err) => isChronoError(err, 'VERSION_PRUNED'), `seq ${v.seq} in segment ${v.segment} (${e.state})`);
      refused++;
    }
    assert.ok(refused > 10, `${refused} pruned versions read`);
    // The archive scrub (heads, chain, every object read whole) finds nothing wrong.
    const scrub = await scrubArchive(new LocalDirStore(archive), { readDataFraction: 1 });
    assert.ok(scrub.ok && scrub.checked.segmentsRead > 0, JSON.stringify(scrub.problems.slice(0, 3)));
    // Prune again: nothing more to do.
    const again = await vol.prune();
    assert.equal(again.deleted.length + again.rewritten.length, 0, JSON.stringify(again.plan));
    await vol.close();
    vol = await Volume.open(dir);
    await check(vol, 'after reopen');
    // Everything into the archive, so a recovery holds all of it.
    const c2 = whiteBox(vol);
    const last = c2.segments.current.id;
    await sealNow(c2);
    assert.equal(await c2.archiver.settled(last), undefined);
    await vol.close();
    // Recover from the archive alone: the catalog's retention state comes along.
    const rdir = path.join(tmpDir(), 'rec');
    await recoverFromArchive(archive, rdir);
    // retention.json comes back as the prune saw it, forgotten labels included (a label whose
    // newest event was forgotten must not come to name an older kept one).
    const retentionOf = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'retention.json'), 'utf8'));
    const original = retentionOf(dir);
    assert.ok(original.forgottenLabels?.length > 0, 'the forget recorded the labels it dropped');
    assert.deepEqual(retentionOf(rdir).forgottenLabels, original.forgottenLabels);
    assert.deepEqual(retentionOf(rdir).forgotten, original.forgotten);
    vol = await Volume.open(rdir);
    await check(vol, 'recovered');
    // A point in the thinned span would read an older version if the recovered volume forgot the retention state.
    const thinned = events[events.length - 4].seq + 1;
    assert.throws(() => vol.resolvePoint(`seq:${thinned}`), (err) => isChronoError(err, 'POINT_FORGOTTEN'));
  } finally {
    await vol.close();
  }
});

test('recover after prune refuses a lost object (one the catalog does not say was deleted)', async () => {
  const rng = new Rng(77);
  const { archive, vol } = await freshVolume(SMALL);
  const model = new VolumeModel(SMALL.sizeBytes);
  try {
    await hotWrites(vol, model, rng, 400);
    forget(vol, { keepLast: 2 });
    await vol.prune();
  } finally {
    await vol.close();
  }
  const store = new LocalDirStore(archive);
  const cat = await ArchiveCatalog.load(store, undefined);
  assert.ok(cat.present);
  // Lose an uncatalogued object in the middle of the chain.
  const keys = await store.list(FILE_NAMES.archiveSegmentsPrefix);
  const victim = keys.map((k) => ({ k, id: parseInt(k.slice(9, 17), 16) })).find((x) => !cat.entry(x.id) && x.id > 1 && x.id < keys.length - 2);
  assert.ok(victim, `an uncatalogued object among ${keys.join(' ')}`);
  await store.delete(victim.k);
  await assert.rejects(recoverFromArchive(archive, path.join(tmpDir(), 'rec')), (err) => isChronoError(err, 'ARCHIVE_MISSING'));
  // Losing a compacted object is refused too.
  const c = cat.body.segments.find((s) => s.state === 'compacted');
  if (c) {
    await store.delete(cat.keyOf(c.id));
    await assert.rejects(recoverFromArchive(archive, path.join(tmpDir(), 'rec2')), (err) => isChronoError(err, 'ARCHIVE_MISSING'));
  }
});

test('archive catalog: magic, version, length, body checksum and volume each refused with their own code', () => {
  const vid = Buffer.alloc(16, 7);
  const body = { generation: 3, segments: [{ id: 2, generation: 3, firstSeq: 10, nextSeq: 20, state: 'compacted' as const, bytes: 100, keptSeqs: [[12, 13]] as Array<[number, number]> }], retention: { pins: [], forgotten: [[1, 2]] as Array<[number, number]>, continuousFromSeq: 30, keptSeqs: [12] } };
  const good = encodeCatalog(vid, body);
  assert.deepEqual(decodeCatalog(good, vid), body);
  const bad = (f: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  assert.throws(() => decodeCatalog(bad((b) => (b[0] ^= 1)), vid), (e) => isChronoError(e, 'BAD_MAGIC'));
  assert.throws(() => decodeCatalog(bad((b) => b.writeUInt16LE(9, 8)), vid), (e) => isChronoError(e, 'BAD_VERSION'));
  assert.throws(() => decodeCatalog(good.subarray(0, good.length - 1), vid), (e) => isChronoError(e, 'BAD_LENGTH'));
  assert.throws(() => decodeCatalog(bad((b) => (b[b.length - 2] ^= 1)), vid), (e) => isChronoError(e, 'BAD_CHECKSUM'));
  assert.throws(() => decodeCatalog(bad((b) => (b[20] ^= 1)), vid), (e) => isChronoError(e, 'BAD_CHECKSUM'));
  assert.throws(() => decodeCatalog(good, Buffer.alloc(16, 8)), (e) => isChronoError(e, 'FOREIGN_SEGMENT'));
  const c = new ArchiveCatalog(body);
  assert.equal(c.keyOf(2), 'segments/00000002.g3.cvseg');
  assert.equal(c.keyOf(5), 'segments/00000005.cvseg');
  assert.ok(c.holdsSeq(2, 12) && !c.holdsSeq(2, 11) && c.holdsSeq(5, 1));
  const pruned = c.prunedTest();
  assert.deepEqual([pruned(0, 11, 2), pruned(0, 12, 2), pruned(0, 13, 2), pruned(0, 14, 2), pruned(0, 1, 5), pruned(0, 1, 99)], [true, false, false, true, false, false]);
});

test('segment liveness by a merge of the runs agrees with prunableVersions (a sort of every version)', async () => {
  const { vol } = await freshVolume(SMALL);
  try {
    const events = await hotWrites(vol, new VolumeModel(SMALL.sizeBytes), new Rng(99), 300);
    const index = whiteBox(vol).index;
    assert.ok(index.runCount > 1 && index.memtableCount > 0, `runs ${index.runCount}, memtable ${index.memtableCount}`);
    const sorted: number[][] = [];
    index.versionsInSeqRange(-1, Number.MAX_SAFE_INTEGER, (b, q, g, o) => sorted.push([b, q, g, o]));
    sorted.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    const merged: number[][] = [];
    index.versionsInBlockOrder((b, q, g, o) => merged.push([b, q, g, o]));
    assert.deepEqual(merged, sorted);
    for (const [keep, from] of [[[events[2].seq, events[20].seq], events[30].seq], [[], vol.lastSeq], [[events[5].seq], 0]] as Array<[number[], number]>) {
      const live = segmentLiveness(index, keep, from, () => true);
      const dead = [...live.values()].reduce((n, l) => n + l.deadVersions, 0);
      assert.equal(dead, vol.prunable(keep, from).versions);
    }
  } finally {
    await vol.close();
  }
});

test('prune on an encrypted archive: rewritten objects and the catalog sealed like the rest; recover with the key', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const { settings } = archiveSettings({ archive: path.join(root, 'archive'), keyFile: path.join(root, 'archive.key'), newKey: true });
  await Volume.create(dir, { ...SMALL, archiveSettings: settings });
  let vol = await Volume.open(dir);
  const model = new VolumeModel(SMALL.sizeBytes);
  try {
    const events = await hotWrites(vol, model, new Rng(404), 300, 30);
    forget(vol, { keepLast: 2 });
    const core = whiteBox(vol);
    const last = core.segments.current.id;
    await sealNow(core);
    assert.equal(await core.archiver.settled(last), undefined);
    const r = await vol.prune();
    assert.ok(r.deleted.length > 0 && r.rewritten.length > 0, JSON.stringify(r.plan));
    // Sealed: the raw catalog file is not a catalog (no magic in the clear).
    assert.ok(!fs.readFileSync(path.join(root, 'archive', 'catalog.cvct')).subarray(0, 8).equals(Buffer.from('CHRVOLCT')));
    const check = async (v: Volume, ctx: string) => {
      for (const e of events.slice(-2)) assert.ok((await v.read(0, v.sizeBytes, v.resolvePoint(String(e.id)))).equals(model.atSeq.get(e.seq)!), `${ctx}: event ${e.id}`);
      assert.throws(() => v.resolvePoint(String(events[0].id)), (err) => isChronoError(err, 'POINT_FORGOTTEN'));
      const ver = await v.verify();
      assert.ok(ver.ok, `${ctx}: ${JSON.stringify(ver.problems.slice(0, 3))}`);
    };
    await check(vol, 'pruned');
    await vol.close();
    await recoverFromArchive(settings, path.join(root, 'rec'));
    vol = await Volume.open(path.join(root, 'rec'));
    await check(vol, 'recovered');
  } finally {
    await vol.close();
  }
});

test('prune beside writes and reads: both go on while it runs, and every kept point and live stay exact', async () => {
  const rng = new Rng(808);
  const { vol } = await freshVolume(SMALL);
  const model = new VolumeModel(SMALL.sizeBytes);
  try {
    const events = await hotWrites(vol, model, rng, 400, 30);
    forget(vol, { keepLast: 2 });
    const kept = events.slice(-2);
    let done = false;
    const pruning = vol.prune().finally(() => (done = true));
    let writes = 0;
    let reads = 0;
    while (!done || writes < 20) {
      const off = rng.int(SMALL.sizeBytes / BS) * BS;
      const data = rng.bytes(BS);
      await vol.write(off, data);
      model.write(off, data);
      writes++;
      const e = kept[reads++ % kept.length];
      assert.ok((await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(e.id)))).equals(model.atSeq.get(e.seq)!), `event ${e.id} during the prune`);
    }
    const r = await pruning;
    assert.ok(r.deleted.length + r.rewritten.length > 0);
    assert.ok((await vol.read(0, vol.sizeBytes)).equals(model.live));
    for (const e of kept) assert.ok((await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(e.id)))).equals(model.atSeq.get(e.seq)!));
    const v = await vol.verify();
    assert.ok(v.ok, JSON.stringify(v.problems.slice(0, 3)));
  } finally {
    await vol.close();
  }
});
