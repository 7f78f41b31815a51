import './helpers/fs-trace'; // first: it wraps node:fs before the clone modules capture it
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { CLONE_CRC, CLONE_MAP } from '../src/format/constants';
import { Volume } from '../src/volume/volume';
import { durableBytes, log, stopTracking, track } from './helpers/fs-trace';
import { tmpDir } from './helpers/tmp';

/**
 * Issue 10: after a crash, a clone takes a block that differs from its CRC entry as found only
 * in a region marked "overwritten in place since the last sync". The power-cut ordering that
 * makes that safe (DESIGN rule 12a), checked at every write into overlay.data against what an
 * fdatasync has made durable so far: a block the durable map holds is never overwritten before
 * its region's mark is durable. And it costs one mark (one fdatasync) per region per sync.
 */

const BS = 4096;
const BLOCKS = 8192; // 32 MiB
const R = CLONE_CRC.markRegionBlocks;
const fill = (s: string) => Buffer.from(s.padEnd(BS, '.'));

async function settle(p: Promise<void> | undefined): Promise<boolean> {
  if (!p) return false;
  await p;
  return true;
}

test('clone region marks: every in-place overwrite of a durable block finds its region durably marked first; one mark per region per sync; kept one interval while overwritten, then cleared at a sync after the CRCs; a sequential overwrite marks ahead', async () => {
  const dir = path.join(tmpDir('clone-marks-'), 'v');
  await Volume.create(dir, { sizeBytes: BLOCKS * BS, blockSizeBytes: BS, segmentSizeBytes: 256 << 10 });
  let v = await Volume.open(dir);
  try {
    await v.write(0, Buffer.alloc(8 * BS, 0x42));
    await v.sync({ label: 'e1' });
    await clonesOf(v).create('c', 'e1');
    const o = clonesOf(v).overlay('c');
    for (const b of [0, 2, 6 * R]) o.write(b * BS, fill(`clone-${b}`));
    o.write(10 * R * BS, Buffer.alloc(4 * R * BS, 0x10)); // regions 10-13, for the sequential overwrite
    await o.sync();
  } finally {
    await v.close();
  }
  const cdir = path.join(dir, 'clones', 'c');
  const [data, crc, map] = ['overlay.data', 'overlay.crc', 'overlay.map'].map((f) => path.join(cdir, f));
  const marksAt = CLONE_CRC.lengthBytes + CLONE_CRC.entryBytes * BLOCKS;
  const bit = (b: Buffer, at: number, i: number) => ((b[at + (i >> 3)] ?? 0) & (1 << (i & 7))) !== 0;
  const durablyMarked = () => Array.from({ length: BLOCKS / R }, (_, r) => r).filter((r) => bit(durableBytes(crc), marksAt, r));
  const problems: string[] = [];
  v = await Volume.open(dir);
  try {
    const o = clonesOf(v).overlay('c');
    track([data, crc, map], (file, at, bytes) => {
      if (file !== data) return;
      for (let b = Math.floor(at / BS); b < Math.ceil((at + bytes.length) / BS); b++) {
        if (bit(durableBytes(map), CLONE_MAP.lengthBytes, b) && !bit(durableBytes(crc), marksAt, Math.floor(b / R))) problems.push(`block ${b} overwritten before its region's mark was durable`);
      }
    });
    const crcSyncs = () => log.filter((e) => e.op === 'sync' && e.file === crc).length;

    assert.equal(await settle(o.write(6 * R * BS, fill('again'))), true, 'an overwrite of a synced block waits for its mark');
    assert.equal(await settle(o.write(6 * R * BS, fill('and again'))), false, 'the region is marked: no wait');
    assert.equal(await settle(o.write((6 * R + 1) * BS, fill('new'))), false, 'a first write needs no mark');
    assert.equal(await settle(o.write(3 * R * BS, fill('new in region 3'))), false);
    assert.equal(await settle(o.write(2 * BS + 100, Buffer.from('partial'))), true, 'block 2, region 0: read, merged, marked, written');
    assert.deepEqual(problems, []);
    assert.equal(crcSyncs(), 2, 'one mark each for regions 6 and 0');
    assert.deepEqual(durablyMarked(), [0, 6]);

    let before = log.length;
    await o.sync();
    const steps = () => log.slice(before).map((e) => `${e.op} ${path.basename(e.file)}${e.op === 'write' && e.file === crc ? (e.at! >= marksAt ? ' marks' : ' entries') : ''}`);
    assert.deepEqual(steps(), ['sync overlay.data', 'write overlay.crc entries', 'write overlay.crc entries', 'write overlay.crc entries', 'sync overlay.crc', 'write overlay.map', 'write overlay.map', 'sync overlay.map'], 'data, entries, map; regions overwritten in the interval keep their marks');
    assert.deepEqual(durablyMarked(), [0, 6]);

    assert.equal(await settle(o.write(6 * R * BS, fill('next interval'))), false, 'still marked: no wait');
    before = log.length;
    await o.sync();
    assert.deepEqual(steps(), ['sync overlay.data', 'write overlay.crc entries', 'sync overlay.crc', 'write overlay.crc marks'], 'region 0, not overwritten in that interval, is cleared after the entries are durable');
    assert.equal(log[log.length - 1].bytes![0], 1 << 6);
    before = log.length;
    await o.sync();
    assert.deepEqual(steps(), ['sync overlay.data', 'write overlay.crc marks'], 'and region 6 after an interval without overwrites');
    const n = crcSyncs();
    assert.equal(await settle(o.write(6 * R * BS, fill('after the clear'))), true, 'marked again');
    assert.equal(crcSyncs(), n + 1);

    // A sequential overwrite of regions 10-13 in 1-region writes: the second marks 15 regions
    // ahead of it in its one fdatasync, the third and fourth need none.
    const m = crcSyncs();
    for (let r = 10; r < 14; r++) await settle(o.write(r * R * BS, Buffer.alloc(R * BS, r)));
    assert.equal(crcSyncs(), m + 2);
    assert.deepEqual(durablyMarked(), [6, ...Array.from({ length: 17 }, (_, i) => 10 + i)]);
    await o.sync();
    assert.deepEqual(problems, []);
  } finally {
    await v.close();
    stopTracking();
  }
  const after = fs.readFileSync(crc);
  assert.ok(after.subarray(marksAt).every((x) => x === 0), 'closed: no region marked');
});
