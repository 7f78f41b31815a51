import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../src/archive/memory-store';
import { isChronoError } from '../src/errors';
import { RecordType, segmentFileName } from '../src/format/constants';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { LIVE_SEQ } from '../src/volume/events';
import { verifyVolume } from '../src/volume/verify';
import { Volume } from '../src/volume/volume';
import { Rng } from './helpers/rng';
import { whiteBox } from '../src/volume/white-box';

const SIZE = 128 * 1024;
const BS = 512;

/** A volume whose block 0 sits in a sealed segment in primary, closed (so a checkpoint covers it). */
async function sealedBlock(): Promise<{ mem: MemoryFileSystem; fs: FaultyFileSystem; store: MemoryStore; data: Buffer; segment: number; offset: number }> {
  const mem = new MemoryFileSystem();
  const fs = new FaultyFileSystem(mem);
  const store = new MemoryStore();
  mem.mkdirp('/v');
  await Volume.create('/v', { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 }, { fs, store });
  const vol = await Volume.open('/v', { fs, store });
  const rng = new Rng(7);
  const data = rng.bytes(BS);
  await vol.write(0, data);
  // Fill the first segment and more with other blocks: block 0 stays in sealed segment 1.
  for (let i = 0; i < 90; i++) await vol.write(BS + rng.int(SIZE / BS - 1) * BS, rng.bytes(2 * BS));
  const v = whiteBox(vol).index.floor(0, LIVE_SEQ)!;
  assert.ok(v.segment < whiteBox(vol).segments.current.id && whiteBox(vol).segments.sealed.includes(v.segment), 'block 0 is in a sealed segment in primary');
  await vol.close();
  return { mem, fs, store, data, segment: v.segment, offset: v.offset };
}

for (const cold of [true, false]) {
  test(`a flipped data byte in a sealed segment fails the read with CORRUPT_BLOCK, never served (${cold ? 'cold cache: threadpool read' : 'cached read'})`, async () => {
    const { mem, fs, store, data, segment, offset } = await sealedBlock();
    const file = `/v/segments/${segmentFileName(segment)}`;
    assert.ok(mem.exists(file), `segment file ${file}`);
    // The unit is (crc32c, data): flip a data byte.
    const h = mem.open(file, 'readWrite');
    const b = Buffer.alloc(1);
    h.read(b, 0, 1, offset + 4 + 100);
    b[0] ^= 0x20;
    h.write(b, 0, 1, offset + 4 + 100);
    h.close();
    fs.coldCache = cold;
    const vol = await Volume.open('/v', { fs, store, cacheBytes: 0 });
    try {
      await assert.rejects(vol.read(0, BS), (e) => isChronoError(e, 'CORRUPT_BLOCK'), 'the damaged block is refused');
      // Its neighbours are not damaged and still read.
      await vol.read(BS, BS);
      assert.ok(!data.equals(Buffer.alloc(BS)));
    } finally {
      await vol.close();
    }
  });
}

test('verify reports a log record that the index does not know (index-mismatch)', async () => {
  const mem = new MemoryFileSystem();
  const store = new MemoryStore();
  mem.mkdirp('/v');
  await Volume.create('/v', { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 }, { fs: mem, store });
  const vol = await Volume.open('/v', { fs: mem, store });
  await vol.write(3 * BS, Buffer.alloc(BS, 1));
  const core = whiteBox(vol);
  assert.deepEqual((await verifyVolume(core)).problems, [], 'clean before');
  // A WRITE record in the log that never reached the index (as a lost index update would leave).
  const seq = core.volumeLog.nextSeq;
  core.segments.current.appendBlocks({ type: RecordType.WRITE, blockCount: 1, seq, timeMs: Date.now(), firstBlock: 3, originSegment: 0, originOffset: 0 }, Buffer.alloc(BS, 2), 0, BS);
  const report = await verifyVolume(core);
  assert.equal(report.ok, false);
  assert.ok(report.problems.some((p) => p.kind === 'index-mismatch' && p.segment === core.segments.current.id), `index-mismatch reported: ${JSON.stringify(report.problems)}`);
  await vol.close();
});
