import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { bufferSource } from '../src/archive/archive-object';
import { ChronoError, isChronoError } from '../src/errors';
import { RECORD_HEADER, RecordType } from '../src/format/constants';
import { HEADER_BYTES } from '../src/format/record';
import { scanSegment } from '../src/segment/segment-scanner';
import { Volume } from '../src/volume/volume';
import { cli } from './helpers/cli';
import { SMALL, freshVolume } from './helpers/volumes';

/**
 * Issue 10, defect 1: damage under anything acknowledged (the checkpoint's covered position, a
 * sync point, a sealed segment) is CORRUPT_LOG; only a torn tail past all of it may be cut.
 */

const BS = 4096;
const block = (b: number) => Buffer.alloc(BS, 0x40 + b);
const code = (c: string) => (e: unknown) => isChronoError(e) && (e as ChronoError).code === c;

function segFiles(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'segments')).sort().map((f) => path.join(dir, 'segments', f));
}

function records(file: string) {
  return scanSegment(bufferSource(fs.readFileSync(file)), { blockSizeBytes: BS, verifyData: false, segmentId: 0 }).records;
}

function flip(file: string, offset: number): void {
  const b = fs.readFileSync(file);
  b[offset] ^= 0x5a;
  fs.writeFileSync(file, b);
}

/** Blocks 0-3 written and synced, then blocks 1 and 2 rewritten, closed (the close checkpoints them). */
async function checkpointedTail(): Promise<{ dir: string; file: string; last: Array<{ offset: number; header: { type: number; firstBlock: number } }> }> {
  const { dir, vol } = await freshVolume();
  for (let b = 0; b < 4; b++) await vol.write(b * BS, block(b));
  await vol.sync({ label: 'synced' });
  await vol.write(1 * BS, block(11));
  await vol.write(2 * BS, block(12));
  await vol.close();
  const file = segFiles(dir).pop()!;
  const recs = records(file);
  const last = recs.filter((r) => r.header.type === RecordType.WRITE).slice(-2);
  assert.deepEqual(last.map((r) => r.header.firstBlock), [1, 2]);
  assert.ok(recs.findIndex((r) => r.header.type === RecordType.SYNC) < recs.indexOf(last[0] as (typeof recs)[0]), 'the rewrites come after the last sync point');
  return { dir, file, last };
}

for (const [where, at] of [
  ['record header', (r: { offset: number }) => r.offset + RECORD_HEADER.off.seq],
  ['block data', (r: { offset: number }) => r.offset + HEADER_BYTES + 4 + 100],
] as const) {
  test(`acknowledged damage: a flipped byte (${where}) in records the closing checkpoint covers fails open with CORRUPT_LOG, never cut as a torn tail`, async () => {
    const { dir, file, last } = await checkpointedTail();
    const size = fs.statSync(file).size;
    flip(file, at(last[0]));
    let vol: Volume | undefined;
    try {
      vol = await Volume.open(dir);
    } catch (err) {
      assert.ok(code('CORRUPT_LOG')(err), String(err));
      assert.equal(fs.statSync(file).size, size, 'nothing was cut');
      const v = cli(['verify', dir]);
      assert.equal(v.status, 1, v.stderr);
      assert.match(v.stdout, /DAMAGE open \[CORRUPT_LOG\] segment \d+ offset \d+/, 'verify says where');
      return;
    }
    // The code before the fix got here: it cut the covered records as a torn tail, and the next
    // writes reused their offsets, which the index still names for blocks 1 and 2.
    await vol.write(5 * BS, block(5));
    await vol.write(6 * BS, block(6));
    const one = await vol.read(1 * BS, BS);
    await vol.close();
    assert.fail(`open accepted damage under the checkpoint (cut ${vol.replayReport.tornTailCutBytes} bytes); block 1 now reads as ${one.equals(block(5)) ? "block 5's bytes" : 'something'}`);
  });
}

test('acknowledged damage: with the index present, damage past the checkpoint and past the last sync point is still cut as a torn tail', async () => {
  const { dir, vol } = await freshVolume();
  await vol.write(0, block(0));
  await vol.close(); // the checkpoint covers block 0
  const saved = `${dir}-index`;
  fs.cpSync(path.join(dir, 'index'), saved, { recursive: true });
  const v = await Volume.open(dir);
  await v.write(1 * BS, block(1));
  await v.sync({ label: 'acked' });
  await v.write(2 * BS, block(2));
  await v.write(3 * BS, block(3));
  await v.close();
  // A crash before that close's checkpoint: the older checkpoint is what the disk holds.
  fs.rmSync(path.join(dir, 'index'), { recursive: true });
  fs.cpSync(saved, path.join(dir, 'index'), { recursive: true });
  const file = segFiles(dir).pop()!;
  const unsynced = records(file).filter((r) => r.header.type === RecordType.WRITE && r.header.firstBlock >= 2);
  assert.equal(unsynced.length, 2);
  flip(file, unsynced[0].offset + RECORD_HEADER.off.seq);
  const again = await Volume.open(dir);
  assert.ok(again.replayReport.tornTailCutBytes > 0, 'the unsynced tail was cut');
  assert.ok((await again.read(0, BS)).equals(block(0)));
  assert.ok((await again.read(0, BS, again.resolvePoint('acked'))).equals(block(0)));
  assert.ok((await again.read(BS, BS)).equals(block(1)));
  assert.ok((await again.read(2 * BS, 2 * BS)).equals(Buffer.alloc(2 * BS)), 'the cut writes were never acknowledged');
  await again.write(5 * BS, block(5)); // appends go on from the cut
  await again.close();
  const third = await Volume.open(dir);
  assert.ok((await third.read(0, 2 * BS)).equals(Buffer.concat([block(0), block(1)])));
  assert.ok((await third.read(5 * BS, BS)).equals(block(5)));
  await third.close();
});

test('acknowledged damage: with an older checkpoint present, damage below its covered position fails open with CORRUPT_LOG', async () => {
  const { dir, vol } = await freshVolume();
  await vol.write(0, block(0));
  await vol.write(BS, block(1));
  await vol.close();
  const saved = `${dir}-index`;
  fs.cpSync(path.join(dir, 'index'), saved, { recursive: true });
  const v = await Volume.open(dir);
  await v.write(2 * BS, block(2));
  await v.close();
  fs.rmSync(path.join(dir, 'index'), { recursive: true });
  fs.cpSync(saved, path.join(dir, 'index'), { recursive: true });
  const file = segFiles(dir).pop()!;
  const second = records(file).find((r) => r.header.type === RecordType.WRITE && r.header.firstBlock === 1)!;
  flip(file, second.offset + HEADER_BYTES + 4 + 7);
  await assert.rejects(Volume.open(dir), code('CORRUPT_LOG'));
});

test('acknowledged damage: a checkpointed segment cut short, or missing, fails open with CORRUPT_LOG', async () => {
  const { dir, vol } = await freshVolume();
  for (let b = 0; b < 4; b++) await vol.write(b * BS, block(b));
  await vol.close();
  const file = segFiles(dir).pop()!;
  const recs = records(file);
  const lastRec = recs[recs.length - 1];
  const whole = fs.readFileSync(file);
  fs.truncateSync(file, lastRec.offset); // a clean record boundary: no torn bytes to find
  await assert.rejects(Volume.open(dir), code('CORRUPT_LOG'));
  fs.rmSync(file);
  await assert.rejects(Volume.open(dir), code('CORRUPT_LOG'));
  fs.writeFileSync(file, whole);
  const ok = await Volume.open(dir);
  assert.ok((await ok.read(3 * BS, BS)).equals(block(3)));
  await ok.close();
});

test('acknowledged damage: a segment torn while sealing is CORRUPT_LOG when a later segment holds a sync point', async () => {
  const { dir, vol } = await freshVolume(SMALL);
  for (let i = 0; segFiles(dir).length < 3; i++) await vol.write((i % 60) * BS, Buffer.alloc(BS, i + 1));
  await vol.sync({ label: 'acked' }); // a sync point in segment 3: segments 1 and 2 were durable before it
  const copy = `${dir}-copy`;
  fs.cpSync(dir, copy, { recursive: true }); // a crash without a checkpoint covering segment 2
  fs.rmSync(path.join(copy, 'LOCK'));
  await vol.close();
  fs.rmSync(path.join(copy, 'index'), { recursive: true });
  fs.mkdirSync(path.join(copy, 'index'));
  const files = segFiles(copy);
  const recs = records(files[1]);
  fs.truncateSync(files[1], recs[recs.length - 1].offset + 10); // segment 2's SEAL gone, as if torn
  await assert.rejects(Volume.open(copy), code('CORRUPT_LOG'));
  assert.equal(segFiles(copy).length, 3, 'no acknowledged segment was dropped');
});
