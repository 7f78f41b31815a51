import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { RecordType } from '../src/format/constants';
import { HEADER_BYTES } from '../src/format/record';
import { newVolumeId } from '../src/format/superblock';
import { NOT_CACHED, SegmentSet } from '../src/segment/segment-set';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

const BS = 4096;
const MiB = 1024 * 1024;

/**
 * readUnitsLater is documented (and BlockReader.readPrimary relies on it) to take its segment's
 * descriptor in the tick of the lookup, so a turnover that recycles the segment meanwhile cannot
 * fail the read: the bytes never change and the descriptor stays open until the read ends.
 * Since f6826de it first awaits a scan chunk still landing and only then calls this.reader(id):
 * a recycle during that wait drops the chunk and removes the file, and the read fails with IO
 * (open ENOENT) for blocks that are whole and acknowledged.
 */
test('scan chunks: a request waiting for a chunk is still answered when its segment is recycled meanwhile', async () => {
  const dir = path.join(tmpDir(), 'segments');
  const fs = new NodeFileSystem();
  fs.mkdirp(dir);
  const set = new SegmentSet(fs, dir, { volumeId: newVolumeId(), segmentSizeBytes: 8 * MiB, writeBufferBytes: 2 * MiB });
  set.startCurrent(1, 1);
  const data = new Rng(20261203).bytes(16 * BS);
  let at = 0;
  for (let seq = 1; seq <= 64; seq++) {
    const off = set.current.appendBlocks({ type: RecordType.WRITE, blockCount: 16, seq, timeMs: 0, firstBlock: (seq - 1) * 16, originSegment: 0, originOffset: 0 }, data, 0, BS);
    if (seq === 40) at = off + HEADER_BYTES; // the units of one record of the sealed segment
  }
  set.sealCurrent();
  await set.whenSealedDurable(1);
  set.startCurrent(2, 65);

  const count = 16;
  const length = count * (BS + 4);
  // A scan's read-ahead reaches the range: a direct read into a chunk starts.
  set.prefetch(1, at, length);
  const chunks = (set as unknown as { scanChunks: { loading(id: number, p: number, l: number): unknown } }).scanChunks;
  assert.ok(chunks.loading(1, at, length), 'precondition: the range is being read ahead into a chunk (O_DIRECT taken here)');
  const out = Buffer.alloc(count * BS);
  // BlockReader.readPrimary, in one tick: the lookup found the blocks in primary, not yet cached.
  assert.equal(set.tryReadUnitsInto(1, at, BS, count, out, 0, Buffer.alloc(length)), NOT_CACHED);
  const later = set.readUnitsLater(1, at, BS, count, out, 0);
  // Later in the same turn the archiver finishes segment 1 and turnover recycles it.
  set.recycle(1);
  assert.equal(await later, -1, 'the request is answered, as it was before the read-ahead waited for chunks');
  for (let k = 0; k < count; k++) assert.ok(out.subarray(k * BS, (k + 1) * BS).equals(data.subarray(k * BS, (k + 1) * BS)), `block ${k} bit-exact`);
  await set.close();
});

test('node file handle: once its descriptors are closed, a read or a hold is refused, never run on a number another file may hold', async () => {
  const dir = tmpDir();
  const fsys = new NodeFileSystem();
  const file = path.join(dir, 'f');
  const w = fsys.open(file, 'createNew');
  w.write(Buffer.alloc(4096, 1), 0, 4096, 0);
  w.close();
  const h = fsys.open(file, 'read');
  const release = h.hold!();
  h.close(); // deferred: the hold keeps the descriptors
  assert.equal(await h.readAsync(Buffer.alloc(16), 0, 16, 0), 16, 'a held handle still reads after close');
  release();
  await assert.rejects(h.readAsync(Buffer.alloc(16), 0, 16, 0), /closed/);
  assert.throws(() => h.hold!(), /closed/);
});
