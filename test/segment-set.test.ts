import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecordType } from '../src/format/constants';
import { newVolumeId } from '../src/format/superblock';
import { SegmentSet } from '../src/segment/segment-set';
import { MemoryFileSystem } from '../src/storage/memory-file-system';

const BS = 4096;

/** Settles within a few turns of the event loop (held fsyncs never complete by themselves). */
async function settlesSoon(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true), () => (done = true));
  for (let i = 0; i < 20 && !done; i++) await new Promise((r) => setImmediate(r));
  return done;
}

/**
 * A hand-off (the NBD and FUSE write reply) needs the bytes in the kernel, not on disk: across a
 * seal it waits for the sealed segment's last write-out, not for its fdatasync, so a journal
 * commit is not in the reply of the write that crossed the seal. A flush still waits for it.
 */
test('segment set: a hand-off across a seal has every byte in the file without waiting for the seal\'s fsync; syncAll waits for it', async () => {
  const fs = new MemoryFileSystem();
  fs.mkdirp('/v');
  const set = new SegmentSet(fs, '/v', { volumeId: newVolumeId(), segmentSizeBytes: 1 << 20, writeBufferBytes: 64 * 1024 });
  set.startCurrent(1, 1);
  fs.holdSyncs = true;
  const data = Buffer.alloc(8 * BS, 0x5a);
  const header = (seq: number) => ({ type: RecordType.WRITE, blockCount: 8, seq, timeMs: 0, firstBlock: seq * 8, originSegment: 0, originOffset: 0 }) as const;
  for (let seq = 1; seq <= 20; seq++) set.current.appendBlocks(header(seq), data, 0, BS);
  const sealedEnd = set.current.end + 0; // before the SEAL record
  set.sealCurrent();
  set.startCurrent(2, 21);
  set.current.appendBlocks(header(21), data, 0, BS);
  const secondEnd = set.current.end;

  assert.ok(await settlesSoon(set.handOff()), 'the hand-off resolves while the seal\'s fdatasync is held');
  assert.ok(fs.heldSyncs.some((s) => s.path === set.pathOf(1) && s.kind === 'file'), 'the sealed segment\'s fdatasync is still held');
  const first = fs.readFile(set.pathOf(1));
  assert.ok(first.length > sealedEnd, `segment 1 holds every record and its SEAL in the file (${first.length} > ${sealedEnd} bytes)`);
  assert.ok(fs.readFile(set.pathOf(2)).length >= secondEnd, 'segment 2 holds the record appended after the seal');

  const synced = set.syncAll();
  assert.equal(await settlesSoon(synced), false, 'syncAll waits for the held fdatasyncs');
  while (fs.heldSyncs.length) {
    fs.releaseAllSyncs();
    await new Promise((r) => setImmediate(r));
  }
  fs.holdSyncs = false;
  await synced;
  await set.close();
});
