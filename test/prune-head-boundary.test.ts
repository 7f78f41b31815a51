import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { recoverFromArchive } from '../src/volume/recover';
import { sealNow } from '../src/volume/turnover';
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
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * DESIGN rule 16: prune caps the continuous span's start "at the archive head (the first seq
 * not archived): a version whose next version is not archived yet stays, so the state at the
 * head ... is always whole". prune.ts uses c = archivedSeq + 1 and isNeeded keeps a version
 * only when next > c: a version whose next version is EXACTLY the first unarchived seq is
 * dropped, although the state at the head (archivedSeq) reads it. A full recovery then ends at
 * the head with that block missing.
 */
test('prune keeps the version the archive head state reads when its next version is the first unarchived seq', { timeout: 60_000 }, async () => {
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
    // Everything so far goes to the archive: the head is the last seq written.
    await sealNow(core);
    for (let i = 0; i < 500 && (await vol.status()).segments.awaitingArchive.length > 0; i++) await sleep(10);
    head = core.archiver.archivedSeq;
    assert.equal(head, vol.lastSeq, 'the archive holds every seq written');
    // Block 0's next version is the first seq not archived.
    await vol.write(0, blk(0, 2));
    v2Seq = vol.lastSeq;
    assert.equal(v2Seq, head + 1);
    vol.forgetEvents(vol.events.map((e) => e.id), vol.lastSeq); // nothing kept but live
    const r = await vol.prune({ rewriteThreshold: 0.01 });
    console.log(JSON.stringify({ head, v1Seq, v2Seq, deleted: r.deleted, rewritten: r.rewritten, dropped: r.versionsDropped }));
  } finally {
    await vol.close();
  }
  // Primary is lost; the archive alone is recovered: it ends at the head.
  const target = path.join(tmpDir(), 'recovered');
  const rep = await recoverFromArchive(archive, target);
  const rv = await Volume.open(target);
  try {
    const v = (await rv.read(0, BS)).readUInt32BE(4);
    const ver = await rv.verify();
    console.log(JSON.stringify({ recoveredLastSeq: rep.lastSeq, block0Version: v, verifyOk: ver.ok }));
    assert.equal(rep.lastSeq, head);
    assert.equal(v, 1, `recovered live (the state at seq ${rep.lastSeq}) must read block 0 at version 1 (written at seq ${v1Seq}, next version at ${v2Seq} never archived); it reads version ${v}`);
  } finally {
    await rv.close();
  }
});
