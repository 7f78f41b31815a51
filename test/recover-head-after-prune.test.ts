import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { tmpDir } from './helpers/tmp';
import { freshVolume } from './helpers/volumes';

const BS = 4096;
const blk = (b: number, v: number) => {
  const x = Buffer.alloc(BS, v & 0xff);
  x.writeUInt32BE(b, 0);
  x.writeUInt32BE(v, 4);
  return x;
};

/**
 * Review finding: a full recovery (no break) ends at the archive head, the last archived record,
 * and endAtWholeState runs only for a break. Prune drops a version whose next version lies past
 * the head (in the current segment, never archived) when that next version is at or before the
 * continuous span's start and no kept point reads it. The recovered live image, the state at the
 * head, then lacks it: block 0 reads what it held before (here zeros), a state the volume never had.
 */
test('recover (full) after a prune whose continuous span starts past the archive head: live is a state the volume had', async () => {
  const { vol, archive } = await freshVolume({ sizeBytes: 256 * 1024, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 });
  let v1Seq = 0;
  try {
    await vol.write(0, blk(0, 1));
    v1Seq = vol.lastSeq;
    for (let i = 0; i < 300; i++) await vol.write((20 + (i % 40)) * BS, blk(20 + (i % 40), 100 + i));
    await vol.sync({ label: 'e' });
    const core = whiteBox(vol);
    // Block 0's version 1 is archived and out of primary; version 2 goes into the current segment.
    assert.ok(!core.segments.has(core.index.floor(0, v1Seq)!.segment), 'version 1 has left primary');
    await vol.write(0, blk(0, 2));
    vol.forgetEvents(vol.events.map((e) => e.id), vol.lastSeq); // nothing kept but live
    const r = await vol.prune({ rewriteThreshold: 0.01 });
    console.log(JSON.stringify({ deleted: r.deleted, rewritten: r.rewritten, dropped: r.versionsDropped, current: core.segments.current.id, archivedThrough: core.archiver.archivedThrough }));
  } finally {
    await vol.close();
  }
  // The disaster: primary is lost; the archive alone is recovered.
  const target = path.join(tmpDir(), 'recovered');
  const rep = await recoverFromArchive(archive, target);
  const rv = await Volume.open(target);
  try {
    const v = (await rv.read(0, BS)).readUInt32BE(4);
    console.log(JSON.stringify({ lastSeq: rep.lastSeq, v1Seq, block0Version: v }));
    // The recovered history ends before version 2 (never archived) and after version 1.
    if (rep.lastSeq >= v1Seq) assert.ok(v === 1 || v === 2, `recovered live (seq ${rep.lastSeq}) reads block 0 at version ${v}: the state at seq ${rep.lastSeq} held version 1`);
  } finally {
    await rv.close();
  }
});
