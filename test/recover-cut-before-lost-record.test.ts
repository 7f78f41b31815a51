import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import type { BackingStore } from '../src/archive/backing-store';
import { openStore } from '../src/archive/open-store';
import { ChronoError, isChronoError } from '../src/errors';
import { FILE_NAMES } from '../src/format/constants';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';
import { SMALL, freshVolume } from './helpers/volumes';
import { archiveAll, sleep } from './helpers/versioned-blocks';

const BS = SMALL.blockSizeBytes!;
const iso = (ms: number) => new Date(ms).toISOString();

/** A volume whose block 0 was 1 at event `kept` (archived) and 0xee after it (never archived); the time of that lost write. */
async function lostTail(): Promise<{ vol: Volume; archive: string; lostWriteMs: number }> {
  const { vol, archive } = await freshVolume();
  await vol.write(0, Buffer.alloc(BS, 1));
  await vol.sync({ label: 'kept' });
  await archiveAll(vol);
  await sleep(20);
  await vol.write(0, Buffer.alloc(BS, 0xee)); // never archived
  const lostWriteMs = Date.now();
  await sleep(20);
  return { vol, archive, lostWriteMs };
}

/** What a time inside the lost span answers on the recovered volume (opened read-only: nothing appended): POINT_LOST, or what it read. */
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

/** A recovery cut by an EIO on the first segment write: the LOST record, the first thing the recovered volume writes. */
async function cutRecovery(archive: string): Promise<string> {
  const dest = path.join(tmpDir(), 'rec');
  const fs = new FaultyFileSystem(new NodeFileSystem());
  fs.failWhen = (op, p) => op === 'write' && p.startsWith(path.join(dest, 'segments'));
  await assert.rejects(recoverFromArchive(archive, dest, { fs }), (e) => isChronoError(e, 'IO'));
  return dest;
}

// DESIGN rule 27: recover MUST make the lost span durable before it goes on. Before the fix the
// span lived only in the LOST record, appended after the directory had become a volume (its
// superblock written): a recovery cut in between (an EIO, a kill) left a volume that answered a
// time inside the lost span with the archive's last state (block 0 read 1; the lost volume held
// 0xee then), and `recover` again refused the directory (EXISTS).
test('recover cut after the directory became a volume, before its LOST record: a lost time is still refused (POINT_LOST)', { timeout: 60_000 }, async () => {
  const { vol, archive, lostWriteMs } = await lostTail();
  const dest = await cutRecovery(archive);
  await vol.close();
  await assert.rejects(recoverFromArchive(archive, dest), (e) => isChronoError(e, 'EXISTS'), 'the directory became a volume before the cut');
  assert.equal(await answerAt(dest, lostWriteMs), 'POINT_LOST');
});

// A store failure while recover asks about earlier partial recoveries came after the superblock
// too: now it comes before, so it leaves no volume, and recover simply runs again.
test('recover: a store failure before the directory is a volume leaves none; a rerun recovers, and a lost time is refused', { timeout: 60_000 }, async () => {
  const { vol, archive, lostWriteMs } = await lostTail();
  const dest = path.join(tmpDir(), 'rec');
  const real = openStore(archive);
  let failed = false;
  const flaky = new Proxy(real, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (prop === 'list') {
        return async (prefix: string) => {
          if (prefix.startsWith(FILE_NAMES.archiveUnrecoveredPrefix) && !failed) {
            failed = true;
            throw new ChronoError('ARCHIVE_UNAVAILABLE', 'injected: the store answered 503 once');
          }
          return target.list(prefix);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  }) as BackingStore;
  await assert.rejects(recoverFromArchive(archive, dest, { store: flaky }), (e) => isChronoError(e, 'ARCHIVE_UNAVAILABLE'));
  await vol.close();
  await recoverFromArchive(archive, dest);
  assert.equal(await answerAt(dest, lostWriteMs), 'POINT_LOST');
});

// DESIGN rule 27 (found by review): the span of a recovery cut before its LOST record was only in
// the manifest: the recovered volume, used and archived, gave the archive a log without it, and a
// second recovery from that archive answered a lost time with the first archive's last state. A
// writable open now appends the record of a span the manifest holds at the log's next seq.
test('recover cut before its LOST record, the volume used and archived, then recovered again: the first lost span is still refused', { timeout: 60_000 }, async () => {
  const { vol, archive, lostWriteMs } = await lostTail();
  await vol.close();
  const first = await cutRecovery(archive);
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
  assert.equal(await answerAt(second, lostWriteMs), 'POINT_LOST', 'a later recovery refuses the first lost span too');
});
