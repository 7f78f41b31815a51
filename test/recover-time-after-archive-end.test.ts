import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';
import { SMALL, freshVolume } from './helpers/volumes';
import { archiveAll, sleep } from './helpers/versioned-blocks';

const BS = SMALL.blockSizeBytes!;
const iso = (ms: number) => new Date(ms).toISOString();

function assertLost(vol: Volume, timeMs: number, what: string): void {
  assert.throws(() => vol.resolvePoint(iso(timeMs)), (e) => isChronoError(e, 'POINT_LOST'), `${what}: a time the archive never saw is refused`);
}

/**
 * Review 4, finding 4 (issue 10), DESIGN rule 27: a volume writes block 0 = 0xee after the
 * archive's last record, then is lost. `recover` rebuilds the archived history; at the time of
 * that lost write the volume held 0xee, which the recovered volume does not have, so it must not
 * answer that time with the archive's last state (it did: block 0 read 0x01). The refusal holds
 * after a reopen and after a second recovery from the same archive, which the recovered volume
 * archives on into.
 */
test('after recover, a time between the archive\'s last record and the recovery is refused (POINT_LOST), also after reopen and a second recovery', { timeout: 60_000 }, async () => {
  const { vol, archive } = await freshVolume();
  await vol.write(0, Buffer.alloc(BS, 1));
  const kept = await vol.sync({ label: 'kept' });
  await archiveAll(vol);
  await sleep(5);
  const beforeLoss = Date.now();
  assert.ok(beforeLoss > kept.timeMs);
  await sleep(20);
  await vol.write(0, Buffer.alloc(BS, 0xee)); // never archived: the machine is lost with it
  const lostWriteMs = Date.now();
  await sleep(20);
  const root = tmpDir();
  const first = path.join(root, 'first');
  await recoverFromArchive(archive, first);
  await vol.close();

  let rec = await Volume.open(first);
  try {
    assertLost(rec, lostWriteMs, 'after recover');
    assertLost(rec, beforeLoss, 'after the last record too (a lost record may be that old)');
    assert.equal((await rec.read(0, 1, rec.resolvePoint('kept')))[0], 1, 'events are whole');
    assert.equal((await rec.read(0, 1, rec.resolvePoint(`seq:${kept.seq}`)))[0], 1, 'seq points up to the archive\'s last one are whole');
    await sleep(5);
    await rec.write(BS, Buffer.alloc(BS, 2));
    await sleep(5);
    const afterRecovery = Date.now() - 1;
    assert.equal((await rec.read(BS, 1, rec.resolvePoint(iso(afterRecovery))))[0], 2, 'a time after the recovery resolves');
  } finally {
    await rec.close();
  }
  rec = await Volume.open(first);
  try {
    assertLost(rec, lostWriteMs, 'after a reopen');
    // Push the LOST record into the archive: the recovered volume archives on into the same one.
    for (let i = 0; i < 80; i++) await rec.write(((i % 60) + 2) * BS, Buffer.alloc(BS, i));
    await archiveAll(rec);
  } finally {
    await rec.close();
  }
  const second = path.join(root, 'second');
  await recoverFromArchive(archive, second);
  rec = await Volume.open(second);
  try {
    assertLost(rec, lostWriteMs, 'after a second recovery from the same archive');
    assert.equal((await rec.read(0, 1, rec.resolvePoint('kept')))[0], 1);
  } finally {
    await rec.close();
  }
});
