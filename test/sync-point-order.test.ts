import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { RecordType } from '../src/format/constants';
import { decodeSyncPayload } from '../src/format/record';
import { scanSegment } from '../src/segment/segment-scanner';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { Volume } from '../src/volume/volume';

/**
 * docs/DESIGN.md, "Acknowledged bytes are never cut", rule 4: a SYNC record is appended only
 * after the bytes it names are durable. Found by rollback.test's power-loss cut (seeds
 * 3739747196, 3901418062, 3293539657, 2655655588): the rollback's final sync wrote its records,
 * EVENT and SYNC in one write-out, and the power went before that fdatasync; write-back had
 * persisted the SYNC record's page but not an earlier one, and replay, trusting the SYNC,
 * refused the unacknowledged tail as acknowledged damage (CORRUPT_LOG) instead of cutting it.
 */

const BS = 4096;
const DIR = '/v';
const ARCHIVE = '/archive';
const SEGMENTS = `${DIR}/segments`;

const open = (mem: MemoryFileSystem) => Volume.open(DIR, { fs: mem, store: new LocalDirStore(ARCHIVE, mem) });

test('a power cut during a sync\'s fdatasync that persists its last page but not an earlier one is a torn tail: reopen cuts it and keeps everything acknowledged', async () => {
  const size = 256 * 1024;
  const mem = new MemoryFileSystem();
  mem.mkdirp(DIR);
  mem.mkdirp(ARCHIVE);
  await Volume.create(DIR, { sizeBytes: size, blockSizeBytes: BS, segmentSizeBytes: 1024 * 1024, archive: ARCHIVE }, { fs: mem, store: new LocalDirStore(ARCHIVE, mem) });
  const vol = await open(mem);
  const acked = Buffer.alloc(size);
  for (let i = 0; i < size; i++) acked[i] = (i * 31 + (i >> 12)) & 0xff;
  await vol.write(0, acked.subarray(0, 8 * BS));
  await vol.sync({ label: 'acked' });

  // Six blocks more (several pages of log), then a sync whose fdatasync the power cut beats.
  // Write-back kept every appended page but the first: the file's last page (where a SYNC
  // record appended before the fdatasync would sit) survives, an earlier one does not.
  await vol.write(8 * BS, Buffer.alloc(6 * BS, 0xab));
  let pageChoices = 0;
  const reorder = () => (pageChoices++ === 0 ? 1 : 0); // < 0.5: the newer state survives
  let armed = true;
  mem.onCall = (op, path) => {
    if (armed && op === 'sync' && path.startsWith(`${SEGMENTS}/`)) {
      armed = false;
      mem.armPowerCut(-1, { reorder }); // just before this fdatasync takes effect
    }
  };
  const run = vol.sync({ label: 'never acknowledged' }).then(() => undefined, (e: unknown) => e);
  await run;
  mem.onCall = undefined;
  const disk = mem.cutImage;
  assert.ok(disk, 'the power cut happened');
  assert.ok(pageChoices > 1, 'write-back chose among several unsynced pages');
  await vol.close().catch(() => undefined); // the dead process's view
  if (disk.exists(`${DIR}/LOCK`)) disk.remove(`${DIR}/LOCK`);

  // Every SYNC record on the rebooted disk names bytes that were durable before it was written.
  for (const name of disk.list(SEGMENTS)) {
    const bytes = disk.readFile(`${SEGMENTS}/${name}`);
    const scan = scanSegment({ size: bytes.length, read: (p, l) => bytes.subarray(p, p + l) }, { blockSizeBytes: BS, verifyData: false, segmentId: 0 });
    for (const r of scan.records.filter((x) => x.header.type === RecordType.SYNC)) {
      assert.ok(decodeSyncPayload(r.payload!) <= r.offset, `the SYNC record at ${r.offset} names no byte after itself`);
    }
  }

  const after = await open(disk); // failed with CORRUPT_LOG when the SYNC went out with its bytes
  try {
    assert.deepEqual(await after.read(0, 8 * BS), acked.subarray(0, 8 * BS), 'the acknowledged writes are all there');
    assert.ok(after.events.some((e) => e.label === 'acked'), 'the acknowledged event is there');
    assert.ok(!after.events.some((e) => e.label === 'never acknowledged'), 'the torn, unacknowledged event is cut');
  } finally {
    await after.close();
  }
});
