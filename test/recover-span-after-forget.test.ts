import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';
import { freshVolume } from './helpers/volumes';
import { sleep, versionedBlock as blk } from './helpers/versioned-blocks';

const BS = 4096;

function answer(vol: Volume, text: string): string {
  try {
    return `resolves (seq ${vol.resolvePoint(text).seqLimit})`;
  } catch (err) {
    return isChronoError(err) ? err.code : String(err);
  }
}

/**
 * A forget without a window (keep-last N, as a daemon's --retention-every runs it) moves the
 * continuous span's start to the volume's last seq, which lies in the current, unarchived
 * segment; the prune after it records that start in the archive catalog. The volume is then lost
 * and recovered in full: recover writes the catalog's retention state as it is, so the
 * recovered volume's span starts past the end of its own history. Every point the recovered
 * volume makes before it reaches that seq is thinned from birth: `seq:<lastSeq>` and any time
 * after the recovery (what POINT_LOST's message tells the user to choose, and what DESIGN rule
 * 27 says resolves) answer POINT_FORGOTTEN, and a prune may drop their versions. A partial
 * recovery trims the span to its history (rule 24: nobody forgot the new history); a full one
 * must too.
 */
test('after a full recovery, the recovered history is not thinned by a continuous-span start the lost volume recorded past the archive', { timeout: 120_000 }, async () => {
  const { vol, archive } = await freshVolume({ sizeBytes: 256 * 1024, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 });
  for (let b = 0; b < 4; b++) await vol.write(b * BS, blk(b, 1));
  await vol.sync({ label: 'keep-1' });
  for (let b = 0; b < 4; b++) await vol.write(b * BS, blk(b, 2));
  await vol.sync({ label: 'keep-2' });
  for (let i = 0; i < 300; i++) await vol.write((20 + (i % 40)) * BS, blk(20 + (i % 40), 100 + i));
  await vol.sync({ label: 'end' });
  for (let b = 4; b < 16; b++) await vol.writeZeroes(b * BS, BS); // the unarchived tail: small records, all in the current segment
  vol.forgetEvents([], vol.lastSeq); // keep every event; the span starts at the last seq (unarchived)
  const spanStart = vol.retention.continuousFromSeq;
  const r = await vol.prune({ rewriteThreshold: 0.01 });
  assert.ok(r.deleted.length + r.rewritten.length > 0, 'the prune acted, so the catalog records the retention state');
  // The archiver idle (every sealed segment archived; the current one never is): it must not put
  // the archive head while recover does.
  for (let i = 0; i < 500 && (await vol.status()).segments.awaitingArchive.length > 0; i++) await sleep(10);
  const target = path.join(tmpDir(), 'recovered');
  await recoverFromArchive(archive, target); // the machine is lost with its unarchived tail
  await vol.close();

  const rec = await Volume.open(target);
  try {
    const lastArchived = rec.lastSeq - 1; // the LOST record took the seq after it
    assert.ok(spanStart > lastArchived + 3, `precondition: the lost volume's span start (${spanStart}) lies past the recovered history (${lastArchived}) and past the two writes below`);
    await sleep(5);
    await rec.write(30 * BS, blk(30, 9));
    const afterWrite = Date.now();
    await sleep(10);
    await rec.write(30 * BS, blk(30, 10));
    await sleep(5);
    // DESIGN rule 27 and POINT_LOST's own message: a time after the recovery resolves.
    assert.equal(answer(rec, new Date(afterWrite).toISOString()), `resolves (seq ${rec.lastSeq - 1})`,
      `a time after the recovery is a point of the recovered volume's own, never-forgotten history (span start ${spanStart}, recovered history ends at seq ${lastArchived}; seq:${lastArchived} answers ${answer(rec, `seq:${lastArchived}`)})`);
    // And the point POINT_LOST's message offers: the LOST record's seq, the recovered state.
    assert.match(answer(rec, `seq:${lastArchived + 1}`), /^resolves/);
  } finally {
    await rec.close();
  }
});
