import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { RecordType } from '../src/format/constants';
import { ByteSource, scanSegment } from '../src/segment/segment-scanner';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { Volume } from '../src/volume/volume';

const BS = 4096;
const DIR = '/v';
const ARCHIVE = '/archive';

/** A segment file of a fresh volume: eight 4-block writes, then a sync. */
async function segmentBytes(): Promise<{ bytes: Buffer; volumeId: Buffer }> {
  const mem = new MemoryFileSystem();
  mem.mkdirp(DIR);
  mem.mkdirp(ARCHIVE);
  const deps = { fs: mem, store: new LocalDirStore(ARCHIVE, mem) };
  await Volume.create(DIR, { sizeBytes: 1 << 20, blockSizeBytes: BS, segmentSizeBytes: 1 << 20, archive: ARCHIVE }, deps);
  const vol = await Volume.open(DIR, deps);
  for (let i = 0; i < 8; i++) await vol.write(i * 4 * BS, Buffer.alloc(4 * BS, i + 1));
  await vol.sync({ label: 'x' });
  const volumeId = Buffer.from((await vol.status()).volume.id, 'hex');
  await vol.close();
  const name = mem.list(`${DIR}/segments`).sort()[0];
  return { bytes: mem.readFile(`${DIR}/segments/${name}`), volumeId };
}

/** Counts what a scan asks for: kept reads (allocated per call) and transient ones. */
function countingSource(bytes: Buffer): ByteSource & { keptBytes: number; transientReads: number } {
  const scratch = Buffer.alloc(bytes.length);
  const src = {
    size: bytes.length,
    keptBytes: 0,
    transientReads: 0,
    read: (p: number, l: number) => {
      src.keptBytes += l;
      return Buffer.from(bytes.subarray(p, p + l));
    },
    readTransient: (p: number, l: number) => {
      src.transientReads++;
      bytes.copy(scratch, 0, p, p + l);
      return scratch.subarray(0, l);
    },
  };
  return src;
}

test('a verifying scan checks block data through transient reads and keeps none of it (replay allocated a buffer per record)', async () => {
  const { bytes, volumeId } = await segmentBytes();
  const src = countingSource(bytes);
  const scan = scanSegment(src, { blockSizeBytes: BS, volumeId, verifyData: true, segmentId: 1 });
  const writes = scan.records.filter((r) => r.header.type === RecordType.WRITE);
  assert.equal(writes.length, 8);
  assert.ok(writes.every((r) => r.payload === undefined), 'no WRITE record keeps its data');
  assert.equal(src.transientReads, 8, 'each WRITE record\'s units were read once, transiently');
  assert.ok(src.keptBytes < 8 * 4 * BS, `kept reads: ${src.keptBytes} bytes, headers and small payloads only`);
  assert.ok(scan.records.some((r) => r.header.type === RecordType.EVENT && r.payload), 'an EVENT keeps its payload');

  // The transient bytes are the ones checked: a flipped data byte is found.
  const bad = Buffer.from(bytes);
  bad[writes[3].offset + 64 + 4 + 100] ^= 1;
  const damaged = scanSegment(countingSource(bad), { blockSizeBytes: BS, volumeId, verifyData: true, segmentId: 1 });
  assert.equal(damaged.validEnd, writes[3].offset, 'the scan stops at the record whose data is damaged');
  assert.ok(damaged.corruptAt === writes[3].offset || damaged.tornAt === writes[3].offset);
});
