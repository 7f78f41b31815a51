import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';
import { freshVolume, SMALL } from './helpers/volumes';
import { archiveAll, sleep } from './helpers/versioned-blocks';

const BS = SMALL.blockSizeBytes!;
const iso = (ms: number) => new Date(ms).toISOString();

async function answerAt(dest: string, ms: number): Promise<string> {
  const rec = await Volume.open(dest, { readOnly: true });
  try {
    const p = rec.resolvePoint(iso(ms));
    return `resolved to ${p.name} (seq ${p.seqLimit}); block 0 reads ${(await rec.read(0, 1, p))[0]}`;
  } catch (err) {
    return isChronoError(err) ? err.code : String(err);
  } finally {
    await rec.close();
  }
}

// DESIGN rule 27 (found by review): a recovery cut after the superblock, before its LOST record,
// kept the span in the manifest (a reopen refused it), but nothing ever appended the LOST record:
// the recovered volume went on and archived a log without it, and a later recovery from that
// archive answered a lost time with the first archive's last state. A writable open now appends
// the record of a span the manifest holds at the log's next seq.
test('recover cut before its LOST record, the volume used and archived, then recovered again: the first lost span is still refused', { timeout: 60_000 }, async () => {
  const { vol, archive } = await freshVolume();
  await vol.write(0, Buffer.alloc(BS, 1));
  await vol.sync({ label: 'kept' });
  await archiveAll(vol);
  await sleep(20);
  await vol.write(0, Buffer.alloc(BS, 0xee)); // never archived
  const lostWriteMs = Date.now();
  await sleep(20);
  await vol.close();

  // First recovery, cut between the superblock and the LOST record (as recover-cut-before-lost-record.test.ts).
  const first = path.join(tmpDir(), 'rec1');
  const ffs = new FaultyFileSystem(new NodeFileSystem());
  ffs.failWhen = (op, p) => op === 'write' && p.startsWith(path.join(first, 'segments'));
  await assert.rejects(recoverFromArchive(archive, first, { fs: ffs }), (e) => isChronoError(e, 'IO'));
  assert.equal(await answerAt(first, lostWriteMs), 'POINT_LOST', 'the cut recovery refuses the lost time (manifest span)');

  // The recovered volume is used, and archives what it writes.
  await sleep(20);
  const v = await Volume.open(first);
  await v.write(BS, Buffer.alloc(BS, 2));
  await v.sync({ label: 'after-recovery' });
  await archiveAll(v);
  await v.close();
  assert.equal(await answerAt(first, lostWriteMs), 'POINT_LOST', 'the reopened volume refuses it');

  // A second disaster: recover again from the same archive.
  const second = path.join(tmpDir(), 'rec2');
  await recoverFromArchive(archive, second);
  assert.equal(await answerAt(second, lostWriteMs), 'POINT_LOST', 'a later recovery refuses the first lost span too (rule 27)');
});
