import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { bufferSource } from '../src/archive/archive-object';
import { ChronoError, isChronoError } from '../src/errors';
import { RecordType } from '../src/format/constants';
import { HEADER_BYTES } from '../src/format/record';
import { scanSegment } from '../src/segment/segment-scanner';
import { ScanChunks } from '../src/segment/scan-chunks';
import { DirectReads } from '../src/storage/file-system';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { Volume } from '../src/volume/volume';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

const CHUNK = 4096;

/** Direct reads of `file`, each held until the test lets it land (or fail). */
function heldReads(file: Buffer) {
  const pending: Array<{ position: number; land: () => void; fail: () => void }> = [];
  const reads: DirectReads = {
    alignBytes: 512,
    alloc: (n) => Buffer.alloc(n),
    read: (buf, length, position) =>
      new Promise<number>((resolve, reject) => {
        pending.push({
          position,
          land: () => resolve(file.copy(buf, 0, position, Math.min(file.length, position + length))),
          fail: () => reject(new ChronoError('IO', 'injected EIO')),
        });
      }),
  };
  const settle = async (how: 'land' | 'fail' = 'land') => {
    for (const p of pending.splice(0)) p[how]();
    await new Promise((r) => setImmediate(r));
  };
  return { reads, pending, settle };
}

test('scan chunks: a range is served from the chunk that holds it, or gathered across two, only once they have landed', async () => {
  const file = Buffer.from(Array.from({ length: 4 * CHUNK + 100 }, (_, i) => (i * 7) & 0xff));
  const { reads, pending, settle } = heldReads(file);
  const chunks = new ScanChunks(CHUNK, 8);
  assert.equal(chunks.load(3, reads, 100, 2 * CHUNK), true);
  assert.deepEqual(pending.map((p) => p.position), [0, CHUNK, 2 * CHUNK], 'the chunks covering the range, aligned');
  const scratch = Buffer.alloc(CHUNK);
  assert.equal(chunks.view(3, 200, 50, scratch), undefined, 'nothing is served while the read runs');
  const waiting = chunks.loading(3, 200, 50);
  assert.ok(waiting, 'a request can wait for the chunk on its way');
  await settle();
  await waiting;
  const one = chunks.view(3, 200, 50, scratch)!;
  assert.deepEqual(one.buf.subarray(one.offset, one.offset + 50), file.subarray(200, 250), 'within one chunk: its own buffer');
  assert.notEqual(one.buf, scratch);
  const across = chunks.view(3, CHUNK - 30, 60, scratch)!;
  assert.equal(across.buf, scratch, 'across two chunks: gathered');
  assert.deepEqual(across.buf.subarray(0, 60), file.subarray(CHUNK - 30, CHUNK + 30));
  assert.equal(chunks.view(4, 200, 50, scratch), undefined, 'another segment is not held');
  assert.equal(chunks.view(3, 3 * CHUNK + 10, 10, scratch), undefined, 'a chunk never loaded is not held');
  // The file's last chunk is short: only what the read returned is served.
  chunks.load(3, reads, 4 * CHUNK, 100);
  await settle();
  assert.ok(chunks.view(3, 4 * CHUNK, 100, scratch));
  assert.equal(chunks.view(3, 4 * CHUNK + 50, 60, scratch), undefined, 'past the end of the file');
});

test('scan chunks: a failed direct read leaves no chunk, so the request reads the usual way', async () => {
  const file = Buffer.alloc(2 * CHUNK, 1);
  const { reads, settle } = heldReads(file);
  const chunks = new ScanChunks(CHUNK, 4);
  chunks.load(1, reads, 0, CHUNK);
  const waiting = chunks.loading(1, 0, 10)!;
  await settle('fail');
  await waiting;
  assert.equal(chunks.view(1, 0, 10, Buffer.alloc(CHUNK)), undefined);
  assert.equal(chunks.loading(1, 0, 10), undefined);
  assert.equal(chunks.load(1, reads, 0, CHUNK), true, 'its buffer is free again for the next try');
});

test('scan chunks: a full pool evicts what a scan has passed, never chunks loaded ahead of it', async () => {
  const file = Buffer.alloc(16 * CHUNK, 2);
  const { reads, settle } = heldReads(file);
  const chunks = new ScanChunks(CHUNK, 4);
  const scratch = Buffer.alloc(CHUNK);
  chunks.load(1, reads, 0, 4 * CHUNK); // chunks 0-3, loaded ahead
  await settle();
  // The scan reads chunk 0 over and over (its reads are newer than chunks 1-3's loads).
  for (let i = 0; i < 5; i++) assert.ok(chunks.view(1, i * 100, 100, scratch));
  assert.equal(chunks.load(1, reads, 4 * CHUNK, CHUNK), true); // needs a buffer
  await settle();
  for (const c of [1, 2, 3, 4]) assert.ok(chunks.view(1, c * CHUNK, 10, scratch), `chunk ${c} is still held`);
  assert.equal(chunks.view(1, 0, 10, scratch), undefined, 'the chunk the scan had reached went');
  assert.equal(chunks.bufferCount, 4, 'never more buffers than the cap');
});

test('scan chunks: with every buffer loading, load declines (the caller prefetches instead); drop forgets a recycled segment', async () => {
  const file = Buffer.alloc(8 * CHUNK, 3);
  const { reads, settle } = heldReads(file);
  const chunks = new ScanChunks(CHUNK, 2);
  assert.equal(chunks.load(5, reads, 0, 2 * CHUNK), true);
  assert.equal(chunks.load(5, reads, 2 * CHUNK, CHUNK), false, 'no buffer free while both reads run');
  await settle();
  assert.ok(chunks.view(5, 0, 10, Buffer.alloc(CHUNK)));
  chunks.drop(5);
  assert.equal(chunks.view(5, 0, 10, Buffer.alloc(CHUNK)), undefined, 'a dropped segment is not served');
  assert.equal(chunks.load(7, reads, 0, 2 * CHUNK), true, 'its buffers serve the next scan');
});

const BS = 4096;
const MiB = 1024 * 1024;

/**
 * A 32 MiB volume in 8 MiB segments on the real file system, its image written once in 1 MiB
 * writes (random bytes) and synced as event `image`, then half overwritten so the image's
 * segments are sealed. Closed.
 */
async function imageVolume(): Promise<{ dir: string; image: Buffer }> {
  const dir = path.join(tmpDir(), 'vol');
  await Volume.create(dir, { sizeBytes: 32 * MiB, blockSizeBytes: BS, segmentSizeBytes: 8 * MiB });
  const vol = await Volume.open(dir);
  const image = new Rng(20261203).bytes(32 * MiB);
  for (let at = 0; at < image.length; at += MiB) await vol.write(at, image.subarray(at, at + MiB));
  await vol.sync({ label: 'image' });
  for (let at = 0; at < 16 * MiB; at += MiB) await vol.write(at, Buffer.alloc(MiB, 0xee));
  await vol.close();
  return { dir, image };
}

/** The image read as a scan: 128 KiB reads in order, as the kernel's read-ahead sends them. */
async function scan(vol: Volume): Promise<Buffer> {
  const out = Buffer.alloc(32 * MiB);
  const point = vol.resolvePoint('image');
  for (let at = 0; at < out.length; at += 128 * 1024) await vol.readInto(out.subarray(at, at + 128 * 1024), at, 128 * 1024, point);
  return out;
}

test('scan chunks: a scan of a past image on a real file system reads its sealed segments directly, bit-exact', async () => {
  const { dir, image } = await imageVolume();
  const fsys = new FaultyFileSystem(new NodeFileSystem());
  const vol = await Volume.open(dir, { fs: fsys, cacheBytes: 0 });
  const got = await scan(vol);
  assert.ok(got.equals(image), 'every byte of the image as written');
  assert.ok(fsys.counts.readDirect >= 4, `the scan's read-ahead went to the disk directly (${fsys.counts.readDirect} direct reads)`);
  await vol.close();
});

test('scan chunks: direct reads that fail cost nothing but speed: the scan reads the usual way, bit-exact', async () => {
  const { dir, image } = await imageVolume();
  const fsys = new FaultyFileSystem(new NodeFileSystem());
  fsys.failWhen = (op) => op === 'readDirect';
  const vol = await Volume.open(dir, { fs: fsys, cacheBytes: 0 });
  assert.ok((await scan(vol)).equals(image));
  assert.ok(fsys.counts.readDirect >= 4, 'direct reads were tried and failed');
  await vol.close();
});

test('scan chunks: a flipped byte in a sealed segment read through a scan chunk fails the read with CORRUPT_BLOCK', async () => {
  const { dir } = await imageVolume();
  // A block of the image deep inside a sealed segment (past its first chunk, so a scan reaches
  // it through read-ahead, not through the reads that start the scan).
  const segs = fs.readdirSync(path.join(dir, 'segments')).sort().map((f) => path.join(dir, 'segments', f));
  const file = segs[1];
  const bytes = fs.readFileSync(file);
  const recs = scanSegment(bufferSource(bytes), { blockSizeBytes: BS, verifyData: false, segmentId: 0 }).records;
  const rec = recs.find((r) => r.header.type === RecordType.WRITE && r.offset > 5 * MiB)!;
  assert.ok(rec, 'a WRITE record past the segment\'s first chunks');
  const fd = fs.openSync(file, 'r+');
  const at = rec.offset + HEADER_BYTES + 4 + 100; // inside the first block's data
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, at);
  b[0] ^= 0x5a;
  fs.writeSync(fd, b, 0, 1, at);
  fs.closeSync(fd);
  const fsys = new FaultyFileSystem(new NodeFileSystem());
  const vol = await Volume.open(dir, { fs: fsys, cacheBytes: 0 });
  await assert.rejects(scan(vol), (e: unknown) => isChronoError(e) && (e as ChronoError).code === 'CORRUPT_BLOCK' && (e as ChronoError).message.includes(`block ${rec.header.firstBlock} `));
  assert.ok(fsys.counts.readDirect > 0, 'the damaged range was read ahead directly');
  await vol.close();
});

test('scan chunks: a file that refuses direct reads keeps no buffer; close forgets every chunk', async () => {
  const chunks = new ScanChunks(CHUNK, 4);
  const refusing: DirectReads = { alignBytes: 512, alloc: (n) => Buffer.alloc(n), read: () => undefined };
  assert.equal(chunks.load(1, refusing, 0, 2 * CHUNK), false, 'declined: the caller prefetches through the cache');
  assert.equal(chunks.bufferCount, 0);
  const { reads, settle } = heldReads(Buffer.alloc(2 * CHUNK, 9));
  chunks.load(2, reads, 0, 2 * CHUNK);
  await settle();
  assert.ok(chunks.view(2, 0, 10, Buffer.alloc(CHUNK)));
  chunks.close();
  assert.equal(chunks.view(2, 0, 10, Buffer.alloc(CHUNK)), undefined);
  assert.equal(chunks.bufferCount, 0);
});
