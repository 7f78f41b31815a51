import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { tmpDir } from './helpers/tmp';
import { freshVolume } from './helpers/volumes';
import { archiveAll, versionedBlock as blk, versionOf } from './helpers/versioned-blocks';

const BS = 4096;

/**
 * Block 0 at version 1, then enough other writes that version 1 leaves primary, an event, and
 * (with `archiveFirst`) everything archived; then block 0's version 2 in the current segment,
 * never archived; every event forgotten (only live kept) and a prune. Primary is then lost and
 * the archive alone recovered: its live image must be a state the volume had.
 */
async function pruneThenRecover(archiveFirst: boolean): Promise<{ v1Seq: number; v2Seq: number; head: number; lastSeq: number; block0: number; verifyOk: boolean }> {
  const { vol, archive } = await freshVolume({ sizeBytes: 256 * 1024, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 });
  const core = whiteBox(vol);
  let v1Seq = 0;
  let v2Seq = 0;
  let head = 0;
  try {
    await vol.write(0, blk(0, 1));
    v1Seq = vol.lastSeq;
    for (let i = 0; i < 300; i++) await vol.write((20 + (i % 40)) * BS, blk(20 + (i % 40), 100 + i));
    await vol.sync({ label: 'e' });
    assert.ok(!core.segments.has(core.index.floor(0, v1Seq)!.segment), 'version 1 has left primary');
    if (archiveFirst) await archiveAll(vol);
    head = core.archiver.archivedSeq;
    await vol.write(0, blk(0, 2));
    v2Seq = vol.lastSeq;
    vol.forgetEvents(vol.events.map((e) => e.id), vol.lastSeq); // nothing kept but live
    const r = await vol.prune({ rewriteThreshold: 0.01 });
    console.log(JSON.stringify({ head, v1Seq, v2Seq, deleted: r.deleted, rewritten: r.rewritten, dropped: r.versionsDropped }));
  } finally {
    await vol.close();
  }
  const target = path.join(tmpDir(), 'recovered');
  const rep = await recoverFromArchive(archive, target);
  const rv = await Volume.open(target);
  try {
    return { v1Seq, v2Seq, head, lastSeq: rep.lastSeq, block0: await versionOf(rv, 0), verifyOk: (await rv.verify()).ok };
  } finally {
    await rv.close();
  }
}

/**
 * Review finding: a full recovery (no break) ends at the archive head, the last archived record,
 * and endAtWholeState runs only for a break. Prune dropped a version whose next version lies past
 * the head (in the current segment, never archived) when that next version is at or before the
 * continuous span's start and no kept point reads it. The recovered live image, the state at the
 * head, then lacked it: block 0 read what it held before (here zeros), a state the volume never had.
 */
test('recover (full) after a prune whose continuous span starts past the archive head: live is a state the volume had', async () => {
  const r = await pruneThenRecover(false);
  console.log(JSON.stringify(r));
  // The recovered history ends before version 2 (never archived) and after version 1.
  if (r.lastSeq >= r.v1Seq) assert.ok(r.block0 === 1 || r.block0 === 2, `recovered live (seq ${r.lastSeq}) reads block 0 at version ${r.block0}: the state at seq ${r.lastSeq} held version 1`);
});

/**
 * Review finding (DESIGN rule 16): prune capped the span's start at the first seq not archived,
 * and a version is kept only when its next version is past the start: a version whose next
 * version is EXACTLY the first unarchived seq was dropped, though the state at the head reads it.
 */
test('prune keeps the version the archive head state reads when its next version is the first unarchived seq', { timeout: 60_000 }, async () => {
  const r = await pruneThenRecover(true);
  console.log(JSON.stringify(r));
  assert.equal(r.v2Seq, r.head + 1, 'block 0\'s next version is the first seq not archived');
  assert.equal(r.lastSeq, r.head);
  assert.ok(r.verifyOk);
  assert.equal(r.block0, 1, `recovered live (the state at seq ${r.lastSeq}) must read block 0 at version 1 (written at seq ${r.v1Seq}, next version at ${r.v2Seq} never archived); it reads version ${r.block0}`);
});
