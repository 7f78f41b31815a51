import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { archiveKey, bufferSource } from '../src/archive/archive-object';
import { ChronoError, isChronoError } from '../src/errors';
import { FILE_NAMES, RECORD_HEADER, RecordType, SEGMENT_HEADER, SUPERBLOCK, SegmentFlags, segmentFileName } from '../src/format/constants';
import { crc32c } from '../src/format/crc';
import { decodeSegmentHeader, encodeSegmentHeader } from '../src/format/segment-header';
import { newVolumeId } from '../src/format/superblock';
import { HEADER_BYTES } from '../src/format/record';
import { scanSegment } from '../src/segment/segment-scanner';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

/** A volume with 64 distinct blocks written and sealed into several segments, closed. */
async function sealedVolume(): Promise<{ dir: string; archive: string; data: Buffer }> {
  const { dir, vol, archive } = await freshVolume();
  const data = Buffer.alloc(SMALL.sizeBytes);
  for (let b = 0; b < SMALL.sizeBytes / BS; b++) data.fill(b + 1, b * BS, (b + 1) * BS);
  for (let at = 0; at < data.length; at += 16 * 1024) await vol.write(at, data.subarray(at, at + 16 * 1024));
  await vol.sync({ label: 'all' });
  await vol.close();
  return { dir, archive, data };
}

function segFiles(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'segments')).sort().map((f) => path.join(dir, 'segments', f));
}

function records(file: string) {
  const b = fs.readFileSync(file);
  return scanSegment(bufferSource(b), { blockSizeBytes: BS, verifyData: false, segmentId: 0 }).records;
}

function flip(file: string, offset: number): void {
  const b = fs.readFileSync(file);
  b[offset] ^= 0x5a;
  fs.writeFileSync(file, b);
}

const code = (c: string) => (e: unknown) => isChronoError(e) && (e as ChronoError).code === c;

/**
 * Every case runs twice: warm (a block cache, reads of cached bytes served in the event loop's
 * tick) and cold (no block cache, and the OS cache never holds the bytes: every primary read goes
 * through the threadpool read path, whose CRC check must catch the damage just the same).
 */
type Cache = 'warm' | 'cold';
type Open = (dir: string, fsys?: FaultyFileSystem) => Promise<Volume>;

function opener(cache: Cache): Open {
  return (dir, fsys) => {
    const f = fsys ?? new FaultyFileSystem(new NodeFileSystem());
    f.coldCache = cache === 'cold';
    return Volume.open(dir, { fs: f, cacheBytes: cache === 'warm' ? 1 << 20 : 0 });
  };
}

function ctest(name: string, body: (open: Open) => Promise<void>): void {
  for (const cache of ['warm', 'cold'] as const) test(cache === 'warm' ? name : `${name} (cold cache)`, () => body(opener(cache)));
}

ctest('corruption: flipped byte in a block of a sealed segment fails reads of that block only', async (open) => {
  const { dir, data } = await sealedVolume();
  const file = segFiles(dir)[0];
  const rec = records(file).find((r) => r.header.type === 1)!;
  flip(file, rec.offset + HEADER_BYTES + 4 + 100); // inside the first block's data
  const vol = await open(dir);
  const bad = rec.header.firstBlock;
  await assert.rejects(vol.read(bad * BS, BS), code('CORRUPT_BLOCK'));
  await assert.rejects(vol.read(bad * BS, BS, vol.resolvePoint('all')), code('CORRUPT_BLOCK'));
  const other = (bad + 1) * BS;
  assert.ok((await vol.read(other, BS)).equals(data.subarray(other, other + BS)), 'undamaged blocks still read');
  const report = await vol.verify();
  assert.ok(!report.ok && report.problems.some((p) => p.kind === 'primary-segment'));
  await vol.close();
});

ctest('corruption: flipped byte in a record header in the middle of the current segment fails open with CORRUPT_LOG', async (open) => {
  const { dir, vol } = await freshVolume();
  for (let i = 0; i < 3; i++) await vol.write(i * BS, Buffer.alloc(BS, i + 1));
  await vol.flush();
  // Crash without a checkpoint: copy the files while the volume is open.
  const copy = `${dir}-copy`;
  fs.cpSync(dir, copy, { recursive: true });
  fs.rmSync(path.join(copy, 'LOCK'));
  await vol.close();
  const file = segFiles(copy).pop()!;
  const recs = records(file);
  fs.rmSync(path.join(copy, 'index'), { recursive: true });
  fs.mkdirSync(path.join(copy, 'index'));
  flip(file, recs[0].offset + RECORD_HEADER.off.seq);
  await assert.rejects(open(copy), code('CORRUPT_LOG'));
});

ctest('corruption: a torn tail (half-written last record) is cut quietly on open', async (open) => {
  const { dir, vol } = await freshVolume();
  await vol.write(0, Buffer.alloc(BS, 9));
  await vol.sync({ label: 'kept' });
  await vol.close();
  const file = segFiles(dir).pop()!;
  const size = fs.statSync(file).size;
  // A record header claiming 2 blocks, followed by only part of its payload.
  const torn = fs.readFileSync(file).subarray(records(file)[0].offset, records(file)[0].offset + HEADER_BYTES + 1000);
  fs.appendFileSync(file, torn);
  const v = await open(dir);
  assert.equal(v.replayReport.tornTailCutBytes, torn.length);
  assert.equal(fs.statSync(file).size, size);
  assert.ok((await v.read(0, BS, v.resolvePoint('kept'))).equals(Buffer.alloc(BS, 9)));
  await v.write(BS, Buffer.alloc(BS, 1)); // and the log goes on from the cut
  await v.close();
});

ctest('corruption: a truncated sealed segment fails open with CORRUPT_LOG', async (open) => {
  const { dir } = await sealedVolume();
  const file = segFiles(dir)[0];
  fs.truncateSync(file, fs.statSync(file).size - 500);
  await assert.rejects(open(dir), code('CORRUPT_LOG'));
});

/** A volume whose first segments have moved to the archive: built once, copied per case. */
let archivedTemplate: Promise<{ dir: string; archive: string }> | undefined;
async function archivedVolume(): Promise<{ dir: string; archive: string; first: Buffer }> {
  const first = Buffer.alloc(SMALL.sizeBytes, 0xab);
  archivedTemplate ??= (async () => {
    const { dir, vol, archive } = await freshVolume();
    await vol.write(0, first);
    await vol.sync({ label: 'first' });
    for (let i = 0; i < 40; i++) await vol.write(0, Buffer.alloc(SMALL.sizeBytes, i));
    assert.ok((await vol.status()).archive.segments! > 2);
    await vol.close();
    return { dir, archive };
  })();
  const t = await archivedTemplate;
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  fs.cpSync(t.dir, dir, { recursive: true });
  fs.cpSync(t.archive, archive, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ archive }));
  return { dir, archive, first };
}

ctest('corruption: a missing archived segment fails reads of what only it held, and verify reports the gap', async (open) => {
  const { dir, archive } = await archivedVolume();
  fs.rmSync(path.join(archive, archiveKey(1)));
  const vol = await open(dir);
  await assert.rejects(vol.read(0, SMALL.sizeBytes, vol.resolvePoint('first')), code('ARCHIVE_MISSING'));
  const report = await vol.verify();
  assert.ok(report.problems.some((p) => p.kind === 'archive-missing' && p.segment === 1), JSON.stringify(report.problems));
  await vol.close();
});

ctest('corruption: a flipped byte in an archived segment fails reads of that block, and verify reports it', async (open) => {
  const { dir, archive } = await archivedVolume();
  const obj = path.join(archive, archiveKey(1));
  flip(obj, 64 + HEADER_BYTES + 4 + 10);
  const vol = await open(dir);
  await assert.rejects(vol.read(0, SMALL.sizeBytes, vol.resolvePoint('first')), code('CORRUPT_BLOCK'));
  const report = await vol.verify();
  assert.ok(report.problems.some((p) => p.kind === 'archived-segment' && p.segment === 1));
  await vol.close();
});

for (const [name, mutate, want] of [
  ['bad magic', (b: Buffer) => { b[0] ^= 1; }, 'BAD_MAGIC'],
  ['newer format version', (b: Buffer) => { b.writeUInt16LE(99, SUPERBLOCK.off.version); }, 'BAD_VERSION'],
  ['wrong header length', (b: Buffer) => { b.writeUInt16LE(64, SUPERBLOCK.off.headerLength); }, 'BAD_LENGTH'],
  ['flipped byte', (b: Buffer) => { b[SUPERBLOCK.off.volumeSizeBytes] ^= 1; }, 'BAD_CHECKSUM'],
  ['reserved flag set (checksum fixed up)', (b: Buffer) => { b.writeUInt32LE(1, SUPERBLOCK.off.flags); b.writeUInt32LE(crc32c(b.subarray(0, SUPERBLOCK.off.crc)), SUPERBLOCK.off.crc); }, 'BAD_FLAGS'],
] as const) {
  ctest(`corruption: superblock with ${name} is refused with ${want}`, async (open) => {
    const { dir, vol } = await freshVolume();
    await vol.close();
    const p = path.join(dir, 'superblock');
    const b = fs.readFileSync(p);
    mutate(b);
    fs.writeFileSync(p, b);
    await assert.rejects(open(dir), code(want));
  });
}

ctest('corruption: a segment from another volume is refused with FOREIGN_SEGMENT', async (open) => {
  const { dir } = await sealedVolume();
  const files = segFiles(dir);
  const foreign = encodeSegmentHeader({ flags: SegmentFlags.syncPoints, volumeId: newVolumeId(), segmentId: 1, firstSeq: 1, createdMs: Date.now() });
  const b = fs.readFileSync(files[0]);
  foreign.copy(b, 0);
  fs.writeFileSync(files[0], b);
  await assert.rejects(open(dir), code('FOREIGN_SEGMENT'));
});

ctest('corruption: a damaged index manifest is reported, not silently ignored', async (open) => {
  const { dir } = await sealedVolume();
  flip(path.join(dir, 'index', 'MANIFEST'), 40);
  await assert.rejects(open(dir), code('BAD_CHECKSUM'));
});

ctest('corruption: a directory that is not a volume is refused with NOT_A_VOLUME', async (open) => {
  const { dir } = await sealedVolume();
  fs.rmSync(path.join(dir, 'superblock'));
  await assert.rejects(open(dir), code('NOT_A_VOLUME'));
  assert.equal(segmentFileName(1), '00000001.cvseg');
});

ctest('torn seal: a segment torn while being sealed in the background ends the log there; the later, unacknowledged segments are dropped', async (open) => {
  const { dir, vol, archive } = await freshVolume();
  await vol.write(59 * BS, Buffer.alloc(BS, 0xee));
  const e = await vol.sync({ label: 'acknowledged' }); // in segment 1, before any tear
  for (let i = 0; segFiles(dir).length < 3; i++) await vol.write((i % 59) * BS, Buffer.alloc(BS, i + 1));
  const lastSeq = vol.lastSeq;
  // A crash with no checkpoint past segment 1 and no sync point after it: the close writes the
  // files out (without a sync point), and the index goes.
  await vol.close();
  fs.rmSync(path.join(dir, 'index'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'index'));
  forgetArchivedPast(archive);
  // Simulate the crash: the last sealed segment lost its tail (its fsync never finished),
  // and a later segment exists with records that were never acknowledged.
  const files = segFiles(dir);
  const sealedFile = files[files.length - 2];
  const recs = records(sealedFile);
  assert.ok(!recs.some((r) => r.header.type === RecordType.SYNC), 'no sync point after segment 1');
  fs.truncateSync(sealedFile, recs[recs.length - 1].offset + 10); // cut inside its last record, SEAL gone
  const before = files.length;
  const v = await open(dir);
  assert.equal(segFiles(dir).length, before - 1, 'the segment after the tear was dropped');
  assert.ok(v.lastSeq < lastSeq, 'the log ends at the tear');
  assert.deepEqual(v.events.map((x) => x.seq), [e.seq], 'the acknowledged event before the tear is kept');
  assert.ok((await v.read(59 * BS, BS, v.resolvePoint('acknowledged'))).equals(Buffer.alloc(BS, 0xee)));
  await v.write(0, Buffer.alloc(BS, 9)); // the log goes on from the cut
  await v.close();
});

/**
 * The archive as such a crash leaves it: a segment is archived only once its seal is durable, so
 * none of the segments the test tears had reached it. (Closing the volume archived them; left
 * in, the archive head names history past the torn log, which the archive fence rightly
 * refuses: DESIGN rule 29.) Without a head the archive is read as starting there.
 */
function forgetArchivedPast(archive: string): void {
  fs.rmSync(path.join(archive, FILE_NAMES.archiveHead), { force: true });
}

/**
 * A volume with an event 'kept' in segment 1 and `segments` segment files, closed, then with its
 * checkpoint removed: the state a crash leaves before any checkpoint covered segment 2.
 */
async function uncheckpointedSegments(segments: number, fsys: FaultyFileSystem): Promise<{ dir: string; files: string[] }> {
  const { dir, vol, archive } = await freshVolume(SMALL, { fs: fsys });
  await vol.write(0, Buffer.alloc(BS, 4));
  await vol.sync({ label: 'kept' });
  for (let i = 1; segFiles(dir).length < segments; i++) await vol.write((i % 60) * BS, Buffer.alloc(BS, 6));
  await vol.close();
  fs.rmSync(path.join(dir, 'index'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'index'));
  forgetArchivedPast(archive);
  const files = segFiles(dir);
  assert.equal(files.length, segments);
  return { dir, files };
}

ctest('crash while starting a segment: a last segment with a partial header after a sealed one is removed quietly', async (open) => {
  const fsys = new FaultyFileSystem(new NodeFileSystem()); // also catches a handle closed twice
  // Segment 1's seal was durable but segment 2's header was not: only part of it.
  const { dir, files } = await uncheckpointedSegments(2, fsys);
  fs.writeFileSync(files[1], Buffer.alloc(20));
  const v = await open(dir, fsys);
  assert.ok((await v.read(0, BS, v.resolvePoint('kept'))).equals(Buffer.alloc(BS, 4)));
  await v.write(BS, Buffer.alloc(BS, 5)); // the log goes on in a fresh segment 2
  await v.close();
  assert.equal(segFiles(dir).length, 2);
});

ctest('crash while starting a segment: a segment whose header never reached the disk is dropped with the unacknowledged segments after it', async (open) => {
  const fsys = new FaultyFileSystem(new NodeFileSystem());
  // Headers go out with a segment's first records, in the background: a crash can leave segment
  // 2 empty while segment 3 was already created. Nothing after segment 1 was acknowledged.
  const { dir, files } = await uncheckpointedSegments(3, fsys);
  fs.writeFileSync(files[1], Buffer.alloc(0));
  const v = await open(dir, fsys);
  assert.equal(segFiles(dir).length, 2, 'segment 3 was dropped and segment 2 started afresh');
  assert.ok((await v.read(0, BS, v.resolvePoint('kept'))).equals(Buffer.alloc(BS, 4)));
  await v.write(BS, Buffer.alloc(BS, 5));
  await v.sync({ label: 'after' });
  await v.close();
  const again = await open(dir);
  assert.ok((await again.read(BS, BS, again.resolvePoint('after'))).equals(Buffer.alloc(BS, 5)));
  await again.close();
});

ctest('power loss: a segment whose header page never reached the disk while later pages did (zeros where the header belongs) is dropped with the segments after it', async (open) => {
  const fsys = new FaultyFileSystem(new NodeFileSystem());
  const { dir, files } = await uncheckpointedSegments(3, fsys);
  const b = fs.readFileSync(files[1]);
  b.fill(0, 0, 4096);
  fs.writeFileSync(files[1], b);
  const v = await open(dir, fsys);
  assert.equal(segFiles(dir).length, 2, 'segment 3 was dropped and segment 2 started afresh');
  assert.ok((await v.read(0, BS, v.resolvePoint('kept'))).equals(Buffer.alloc(BS, 4)));
  await v.close();
});

ctest('corruption: a covered (checkpointed) segment with an empty file fails open with CORRUPT_LOG rather than being dropped', async (open) => {
  const { dir, vol } = await freshVolume(SMALL);
  for (let i = 0; segFiles(dir).length < 3; i++) await vol.write((i % 60) * BS, Buffer.alloc(BS, 6));
  await vol.sync({ label: 'durable' });
  await vol.close(); // checkpoints: every segment so far is covered
  fs.writeFileSync(segFiles(dir)[1], Buffer.alloc(0));
  await assert.rejects(open(dir), (e) => isChronoError(e));
});

/**
 * The current segment as a crash can leave it: block 0 written and acknowledged by the sync
 * 'kept' (which appends a sync point), then three more one-block writes that reached the file
 * but were never synced. No checkpoint, so replay reads it all. Returns the unsynced records.
 */
async function unsyncedTail(): Promise<{ dir: string; file: string; acked: ScannedRecordLike[]; unsynced: ScannedRecordLike[] }> {
  const { dir, vol } = await freshVolume();
  await vol.write(0, Buffer.alloc(BS, 4));
  await vol.sync({ label: 'kept' });
  for (let i = 1; i <= 3; i++) await vol.write(i * BS, Buffer.alloc(BS, 10 + i));
  await vol.close(); // its checkpoint writes the tail out without a sync point; then forget it:
  fs.rmSync(path.join(dir, 'index'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'index'));
  const file = segFiles(dir).pop()!;
  const recs = records(file);
  const syncAt = recs.findIndex((r) => r.header.type === RecordType.SYNC);
  assert.ok(syncAt > 0, 'the sync wrote a sync point');
  return { dir, file, acked: recs.slice(0, syncAt), unsynced: recs.slice(syncAt + 1) };
}
type ScannedRecordLike = { offset: number; header: { type: number; payloadLength: number } };

function zeroRecord(file: string, r: ScannedRecordLike): void {
  const b = fs.readFileSync(file);
  b.fill(0, r.offset, r.offset + HEADER_BYTES + r.header.payloadLength);
  fs.writeFileSync(file, b);
}

ctest('power loss: an unsynced buffer missing before one that reached the disk (a hole after the last sync point) is cut as a torn tail', async (open) => {
  const { dir, file, unsynced } = await unsyncedTail();
  assert.equal(unsynced.length, 3);
  zeroRecord(file, unsynced[1]); // the middle write's buffer never reached the disk; the last one did
  const v = await open(dir);
  assert.ok(v.replayReport.tornTailCutBytes > 0);
  assert.ok((await v.read(0, BS, v.resolvePoint('kept'))).equals(Buffer.alloc(BS, 4)), 'everything acknowledged is there');
  assert.ok((await v.read(BS, BS)).equals(Buffer.alloc(BS, 11)), 'the unsynced write before the hole survives');
  assert.ok((await v.read(3 * BS, BS)).equals(Buffer.alloc(BS)), 'the records after the hole were never acknowledged: cut');
  await v.write(2 * BS, Buffer.alloc(BS, 7)); // the log goes on from the cut
  await v.sync({ label: 'after' });
  await v.close();
  const again = await open(dir);
  assert.ok((await again.read(2 * BS, BS, again.resolvePoint('after'))).equals(Buffer.alloc(BS, 7)));
  await again.close();
});

ctest('corruption: damage before the last sync point fails open with CORRUPT_LOG, though records follow', async (open) => {
  const { dir, file, acked } = await unsyncedTail();
  zeroRecord(file, acked.find((r) => r.header.type === RecordType.WRITE)!); // acknowledged by the sync
  await assert.rejects(open(dir), code('CORRUPT_LOG'));
});

ctest('corruption: in a segment without sync points (format as first written), any damage followed by records is CORRUPT_LOG', async (open) => {
  const { dir, file, unsynced } = await unsyncedTail();
  const b = fs.readFileSync(file);
  const h = decodeSegmentHeader(b.subarray(0, SEGMENT_HEADER.lengthBytes), undefined, {});
  encodeSegmentHeader({ ...h, flags: 0 }).copy(b, 0);
  fs.writeFileSync(file, b);
  zeroRecord(file, unsynced[1]);
  await assert.rejects(open(dir), code('CORRUPT_LOG'));
});

ctest('corruption: a segment header with an unknown flag bit fails with BAD_FLAGS', async (open) => {
  const { dir, file } = await unsyncedTail();
  const b = fs.readFileSync(file);
  const h = decodeSegmentHeader(b.subarray(0, SEGMENT_HEADER.lengthBytes), undefined, {});
  encodeSegmentHeader({ ...h, flags: 0x3 }).copy(b, 0);
  fs.writeFileSync(file, b);
  await assert.rejects(open(dir), code('BAD_FLAGS'));
});
