import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArchiveObject } from '../src/archive/archive-object';
import { HEADER_BYTES, RecordHeader } from '../src/format/record';
import { forget } from '../src/retention/forget';
import { planSegment } from '../src/volume/prune-plan';
import { objectLiveness, recordLiveness, segmentsWithNewDead } from '../src/volume/prune-walk';
import { SegmentLiveness, segmentLiveness } from '../src/volume/prunable';
import type { Core } from '../src/volume/core';
import { sealNow } from '../src/volume/turnover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { hotWrites } from './helpers/prune';
import { Rng } from './helpers/rng';
import { seedsFor } from './helpers/seeds';
import { SMALL, freshVolume } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';

const BS = 4096;

/**
 * The incremental walk against the full one (segmentLiveness, the model) on random histories and
 * random pairs of retention states (the last prune's, then a later one: kept points forgotten,
 * new ones kept, the span's start moved on): every segment where the full walk finds a version
 * that died between the two is a candidate, every candidate has one, and each candidate's
 * liveness from its own versions and index lookups equals the full walk's.
 */
test('prune walk: only segments with newly dead versions, and their liveness as the full walk has it (seeded)', async () => {
  for (const { seed, source } of seedsFor([2215, 2216])) {
    console.log(`seed ${seed} (${source}); replay with CHRONOVOL_SEED=${seed}`);
    const rng = new Rng(seed);
    const { vol } = await freshVolume(SMALL);
    try {
      const model = new VolumeModel(SMALL.sizeBytes);
      const events = await hotWrites(vol, model, rng, 300, 4, { zeroShare: 0.2 });
      const core = whiteBox(vol);
      const index = core.index;
      // The walk must meet versions in runs and in the memtable: some histories persist only one
      // run in 300 writes (seed 1475645545), so write on until both are there.
      for (let more = 0; more < 20 && !(index.runCount > 1 && index.memtableCount > 0); more++) events.push(...(await hotWrites(vol, model, rng, 50, 4, { zeroShare: 0.2 })));
      // Each archived object's record headers, as the incremental prune reads them.
      const headers = new Map<number, RecordHeader[]>();
      const headersOf = async (id: number) => {
        let h = headers.get(id);
        if (!h) headers.set(id, (h = parseArchiveObject(await core.store.get(core.catalog.keyOf(id)), BS, id, core.sb.volumeId).scan.records.map((r) => r.header)));
        return h;
      };
      assert.ok(index.runCount > 1 && index.memtableCount > 0, `runs ${index.runCount}, memtable ${index.memtableCount}`);
      // Every version (data, ZERO and TRIM alike), grouped by segment (records of one block each: the walk takes any split).
      const bySegment = new Map<number, Array<{ seq: number; firstBlock: number; blockCount: number }>>();
      index.versionsInSeqRange(-1, Number.MAX_SAFE_INTEGER, (block, seq, segment) => {
        let a = bySegment.get(segment);
        if (!a) bySegment.set(segment, (a = []));
        a.push({ seq, firstBlock: block, blockCount: 1 });
      });
      const seqs = events.map((e) => e.seq);
      const pick = (from: number[], p: number) => from.filter(() => rng.bool(p));
      let withNew = 0;
      let skipped = 0;
      let fromObjects = 0;
      for (let trial = 0; trial < 60; trial++) {
        const c0 = trial % 10 === 0 ? 0 : seqs[rng.int(seqs.length)];
        const c1 = Math.max(c0, rng.bool(0.2) ? c0 : trial % 7 === 0 ? vol.lastSeq : seqs[rng.int(seqs.length)]);
        const kept0 = [...pick(seqs.filter((s) => s < c0), 0.4), ...seqs.filter((s) => s >= c0), ...(rng.bool() ? [1 + rng.int(vol.lastSeq)] : [])];
        // Later: some of those forgotten (never one at or past the new start), some in the old span kept.
        const kept1 = [...kept0.filter((s) => s >= c1 || rng.bool(0.6)), ...pick(seqs.filter((s) => s >= c0 && s < c1), 0.3)];
        const ctx = `seed ${seed} trial ${trial}: kept ${kept0} from ${c0} -> kept ${kept1} from ${c1}`;
        const full0 = c0 > 0 ? segmentLiveness(index, kept0, c0, () => true) : new Map<number, SegmentLiveness>();
        const full1 = segmentLiveness(index, kept1, c1, () => true);
        const cand = segmentsWithNewDead(index, { keptSeqs: kept0, continuousFromSeq: c0, eligibleThrough: 0, rewriteThreshold: 0.5 }, kept1, c1, () => true);
        for (const [id, l] of full1) {
          const before = full0.get(id)?.deadVersions ?? 0;
          assert.ok(l.deadVersions >= before, `${ctx}: segment ${id} lost dead versions`);
          assert.equal(cand.has(id), l.deadVersions > before, `${ctx}: segment ${id}: ${before} -> ${l.deadVersions} dead, candidate ${cand.has(id)}`);
          if (!cand.has(id)) skipped++;
        }
        for (const id of cand) {
          withNew++;
          assert.deepEqual(recordLiveness(index, bySegment.get(id)!, kept1, c1), full1.get(id), `${ctx}: segment ${id}'s liveness from its records`);
          // And from its archived object's records (ZERO and TRIM ones too), as prune judges it.
          if (id <= core.archiver.archivedThrough) {
            assert.deepEqual(objectLiveness(index, await headersOf(id), kept1, c1), full1.get(id), `${ctx}: segment ${id}'s liveness from its archived object`);
            fromObjects++;
          }
        }
      }
      // The trials exercised both sides: candidates found, and segments left unvisited.
      assert.ok(withNew > 20 && skipped > 20 && fromObjects > 20, `seed ${seed}: ${withNew} candidates (${fromObjects} judged from their objects), ${skipped} segments skipped`);
    } finally {
      await vol.close();
    }
  }
});

/** Seals the current segment and waits until it is archived. */
async function settle(core: Core): Promise<void> {
  const current = core.segments.current.id;
  await sealNow(core);
  assert.equal(await core.archiver.settled(current), undefined);
}

/** The model: the old full walk over every archived segment outside primary. */
function fullWalk(vol: Volume, core: Core): ReturnType<typeof segmentLiveness> {
  const retention = vol.retention;
  const keptSeqs = [...vol.events.map((e) => e.seq), ...retention.pins.map((p) => p.seq)];
  const inPrimary = new Set([...core.segments.sealed, core.segments.current.id, ...core.leaving]);
  return segmentLiveness(core.index, keptSeqs, retention.continuousFromSeq, (id) => id <= core.archiver.archivedThrough && !inPrimary.has(id) && !core.catalog.isDeleted(id));
}

/** What a prune would do to each segment of a full walk, planned from the archived objects themselves. */
async function fullWalkPlans(core: Core, all: ReturnType<typeof segmentLiveness>, threshold: number): Promise<Array<ReturnType<typeof planSegment>>> {
  const plans: Array<ReturnType<typeof planSegment>> = [];
  for (const [id, l] of all) {
    const obj = await core.store.get(core.catalog.keyOf(id));
    const parsed = parseArchiveObject(obj, BS, id, core.sb.volumeId);
    plans.push(planSegment({ id, objectBytes: obj.length, neededSeqs: l.neededSeqs, records: parsed.scan.records.map((r) => ({ seq: r.header.seq, type: r.header.type, bytes: HEADER_BYTES + r.header.payloadLength })) }, threshold));
  }
  return plans;
}

/**
 * End to end: a first prune walks the whole index, a second (after more writes and a forget) only
 * what changed; afterwards the full walk over every archived segment finds nothing left to delete
 * or rewrite, and the catalog records the walk.
 */
test('prune walk: a second prune walks only what changed and leaves nothing the full walk would act on', async () => {
  const rng = new Rng(2217);
  const { vol } = await freshVolume(SMALL);
  const model = new VolumeModel(SMALL.sizeBytes);
  try {
    const core = whiteBox(vol);
    // Cold data in the upper half, never written again: its segments stay needed, and the
    // second prune has no reason to read them.
    for (let off = SMALL.sizeBytes / 2; off < SMALL.sizeBytes; off += 2 * BS) {
      const data = rng.bytes(2 * BS);
      await vol.write(off, data);
      model.write(off, data);
    }
    await vol.sync({ label: 'cold' });
    const cold = new Set<number>();
    for (let b = SMALL.sizeBytes / 2 / BS; b < SMALL.sizeBytes / BS; b++) cold.add(core.index.floor(b, vol.lastSeq)!.segment);
    await hotWrites(vol, model, rng, 300, 10, { zeroShare: 0.2 });
    forget(vol, { keepLast: 4 });
    await settle(core);
    const first = await vol.prune();
    assert.ok(first.deleted.length + first.rewritten.length > 0, JSON.stringify(first.plan));
    assert.ok(core.catalog.body.walked, 'the catalog records the walk');
    await hotWrites(vol, model, rng, 300, 10, { zeroShare: 0.2 });
    forget(vol, { keepLast: 2 });
    await settle(core);
    const second = await vol.prune();
    assert.ok(second.deleted.length + second.rewritten.length > 0, JSON.stringify(second.plan));
    const all = fullWalk(vol, core);
    assert.ok([...cold].every((id) => all.has(id)), `the cold segments ${[...cold]} are archived and hold needed versions`);
    assert.ok(!first.incremental && second.incremental, 'the first prune walks everything, the second what changed');
    assert.ok(second.objectsRead.every((id) => !cold.has(id)), `the second prune read none of the cold segments ${[...cold]}: ${second.objectsRead}`);
    for (const e of await fullWalkPlans(core, all, 0.5)) assert.equal(e.action, 'keep', `segment ${e.id}: ${e.why}`);
    for (const ev of vol.events) assert.ok((await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(ev.id)))).equals(model.atSeq.get(ev.seq)!), `event ${ev.id}`);
    assert.ok((await vol.read(0, vol.sizeBytes)).equals(model.live), 'live');
    const v = await vol.verify();
    assert.ok(v.ok, JSON.stringify(v.problems.slice(0, 3)));
  } finally {
    await vol.close();
  }
});

/**
 * A prune that leaves rewrites for later (--max-rewrite-bytes) records the walk before it, so the
 * next prune, incremental, still finds them; afterwards nothing is left that the full walk would
 * rewrite or delete.
 */
test('prune walk: rewrites left past --max-rewrite-bytes are found by the next, incremental, prune', async () => {
  const rng = new Rng(2218);
  const { vol } = await freshVolume(SMALL);
  const model = new VolumeModel(SMALL.sizeBytes);
  try {
    const core = whiteBox(vol);
    await hotWrites(vol, model, rng, 300, 10, { zeroShare: 0.2 });
    forget(vol, { keepLast: 4 });
    await settle(core);
    const first = await vol.prune({ rewriteThreshold: 0.05 });
    const walked = core.catalog.body.walked;
    assert.ok(walked && !first.incremental);
    await hotWrites(vol, model, rng, 200, 10, { zeroShare: 0.2 });
    forget(vol, { keepLast: 2 });
    await settle(core);
    const capped = await vol.prune({ maxRewriteBytes: 1, rewriteThreshold: 0.05 });
    assert.ok(capped.incremental, 'the capped prune walks incrementally');
    assert.ok(capped.plan.some((e) => e.why.includes('--max-rewrite-bytes')), `some rewrite was left for later: ${JSON.stringify(capped.plan.map((e) => e.why))}`);
    assert.deepEqual(core.catalog.body.walked, walked, 'the capped prune kept the walk before it');
    const rest = await vol.prune({ rewriteThreshold: 0.05 });
    assert.ok(rest.incremental && rest.rewritten.length > 0, `the next prune did the rewrites left: ${JSON.stringify(rest.plan.map((e) => [e.id, e.action]))}`);
    for (const e of await fullWalkPlans(core, fullWalk(vol, core), 0.05)) assert.ok(e.action !== 'delete' && (e.action !== 'rewrite' || e.deadBytes === 0), `segment ${e.id}: ${e.action}, ${e.why}`);
    for (const ev of vol.events) assert.ok((await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(ev.id)))).equals(model.atSeq.get(ev.seq)!), `event ${ev.id}`);
    assert.ok((await vol.read(0, vol.sizeBytes)).equals(model.live), 'live');
  } finally {
    await vol.close();
  }
});
