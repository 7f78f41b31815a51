import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { recoverFromArchive } from '../src/volume/recover';
import { isChronoError } from '../src/errors';
import { Volume } from '../src/volume/volume';
import { Rng, withSeed } from './helpers/rng';
import { tmpDir } from './helpers/tmp';
import { VolumeModel } from './helpers/volume-model';
import { SMALL, churn, freshVolume } from './helpers/volumes';

// Defect 2 of issue 10. Before the fix recover only checked for gaps between the ids present: with
// the first object deleted it succeeded and block 0 read as zeros (it held 0xab); with the last
// one deleted it succeeded too, silently ending the history early.

interface Source {
  dir: string;
  archive: string;
  ids: string[];
}

/** A closed volume whose archive holds several segments; its first write was 0xab to block 0. */
async function source(rng: Rng): Promise<Source> {
  const { dir, vol, archive } = await freshVolume();
  await vol.write(0, Buffer.alloc(4096, 0xab));
  await vol.sync({ label: 'ab' });
  const model = new VolumeModel(SMALL.sizeBytes);
  await churn(vol, model, rng, 200, 7);
  await vol.close();
  const ids = fs.readdirSync(path.join(archive, 'segments')).sort();
  assert.ok(ids.length >= 4, `archive holds ${ids.length} segments`);
  return { dir, archive, ids };
}

/** A copy of the source's archive without `drop`: recovery writes to the archive it recovers from. */
function copyArchive(s: Source, drop?: string): string {
  const copy = path.join(tmpDir(), 'archive');
  fs.cpSync(s.archive, copy, { recursive: true });
  if (drop) fs.rmSync(path.join(copy, 'segments', drop));
  return copy;
}

async function refused(archive: string, pattern: RegExp): Promise<void> {
  const target = path.join(tmpDir(), 'recovered');
  await assert.rejects(recoverFromArchive(archive, target), (e: unknown) => {
    assert.ok(isChronoError(e, 'ARCHIVE_MISSING'), `${(e as Error).message}`);
    assert.match(e.message, pattern);
    return true;
  });
  assert.equal(fs.existsSync(path.join(target, 'superblock')), false, 'no volume left behind');
}

// One source volume for the three refusals (its seed is printed if one fails).
const rng = Rng.fromEnv();
let shared: Promise<Source> | undefined;
const sharedSource = (): Promise<Source> => (shared ??= source(rng));

test('recover: a missing first object is refused with ARCHIVE_MISSING, even as a partial recovery', async () => {
  await withSeed(rng, async () => {
    const s = await sharedSource();
    await refused(copyArchive(s, s.ids[0]), /archived segment 1 is missing: history seqs 1–\d+ cannot be recovered.*no state of the volume is provably complete/);
    await assert.rejects(recoverFromArchive(copyArchive(s, s.ids[0]), path.join(tmpDir(), 'r'), { acceptPartial: true }), (e: unknown) => isChronoError(e, 'ARCHIVE_MISSING'));
    // The whole archive still recovers, block 0 with its 0xab at the first event (zeros before the fix, with segment 1 gone).
    const target = path.join(tmpDir(), 'whole');
    const report = await recoverFromArchive(copyArchive(s), target);
    assert.equal(report.missing, undefined);
    const v = await Volume.open(target);
    assert.ok((await v.read(0, 4096, v.resolvePoint('ab'))).equals(Buffer.alloc(4096, 0xab)));
    await v.close();
  });
});

test('recover: a missing middle object is refused with ARCHIVE_MISSING, naming it and what it makes unusable', async () => {
  await withSeed(rng, async () => {
    const s = await sharedSource();
    const last = s.ids.length;
    const mid = Math.floor(last / 2);
    await refused(copyArchive(s, s.ids[mid - 1]), new RegExp(`archived segment ${mid} is missing: history seqs \\d+–\\d+ cannot be recovered \\(missing segments: ${mid}; present but unusable without it: ${mid + 1}(–${last})?\\).*--accept-partial`));
  });
});

test('recover: a missing last object is refused with ARCHIVE_MISSING (the archive head names it)', async () => {
  await withSeed(rng, async () => {
    const s = await sharedSource();
    const last = s.ids.length;
    await refused(copyArchive(s, s.ids[last - 1]), new RegExp(`archived segment ${last} is missing: history seqs \\d+–\\d+ cannot be recovered \\(missing segments: ${last}\\); refusing`));
  });
});

test('recover --accept-partial: a missing middle object recovers exactly the history before it and says what is missing', async () => {
  await withSeed(rng, async () => {
    const s = await sharedSource();
    const mid = Math.floor(s.ids.length / 2);
    const archive = copyArchive(s, s.ids[mid - 1]);
    const target = path.join(tmpDir(), 'recovered');
    const report = await recoverFromArchive(archive, target, { acceptPartial: true });
    assert.ok(report.missing, 'the report says history is missing');
    assert.equal(report.missing.segment, mid);
    assert.deepEqual(report.missing.missingSegments, [mid]);
    assert.equal(report.missing.fromSeq, report.lastSeq + 1);
    assert.equal(report.segments, mid - 1);
    // The unusable objects moved aside, so the recovered volume's own segments cannot collide.
    // (Anything after them is the recovered volume's own segments, archived as they were sealed.)
    const after = fs.readdirSync(path.join(archive, 'segments')).sort();
    assert.deepEqual(after.slice(0, mid - 1), s.ids.slice(0, mid - 1));
    for (const name of after.slice(mid - 1)) assert.ok(!fs.existsSync(path.join(s.archive, 'segments', name)) || !fs.readFileSync(path.join(archive, 'segments', name)).equals(fs.readFileSync(path.join(s.archive, 'segments', name))), `${name} is not an unusable object left in place`);
    assert.deepEqual(fs.readdirSync(path.join(archive, 'unrecovered', 'segments')).sort(), s.ids.slice(mid));
    assert.equal(report.unrecoveredObjects, s.ids.length - mid);
    // Live is exactly the original's state at the last recovered seq, and every recovered event is exact.
    const original = await Volume.open(s.dir);
    const v = await Volume.open(target);
    try {
      assert.equal(v.lastSeq, report.lastSeq + 1, 'the recovered history, then the LOST record (DESIGN rule 27)');
      assert.ok((await v.read(0, SMALL.sizeBytes)).equals(await original.read(0, SMALL.sizeBytes, original.resolvePoint(`seq:${report.lastSeq}`))), 'live = the original at the last recovered seq');
      for (const e of v.events) {
        assert.ok(e.seq <= report.lastSeq);
        assert.ok((await v.read(0, SMALL.sizeBytes, v.resolvePoint(`event:${e.id}`))).equals(await original.read(0, SMALL.sizeBytes, original.resolvePoint(`event:${e.id}`))), `event ${e.id}`);
      }
      assert.ok(original.events.some((e) => e.seq > report.lastSeq), 'later events were lost, as reported');
    } finally {
      await v.close();
      await original.close();
    }
  });
});
