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
const BLOCKS = 2048; // 8 MiB
const R = CLONE_CRC.markRegionBlocks;
const fill = (s: string) => Buffer.from(s.padEnd(BS, '.'));

async function settle(p: Promise<void> | undefined): Promise<boolean> {
  if (!p) return false;
  await p;
  return true;
}

test('clone region marks: every in-place overwrite of a durable block finds its region durably marked first; one mark per region per sync; cleared at sync after the CRCs', async () => {
  const dir = path.join(tmpDir('clone-marks-'), 'v');
  await Volume.create(dir, { sizeBytes: BLOCKS * BS, blockSizeBytes: BS, segmentSizeBytes: 256 << 10 });
  let v = await Volume.open(dir);
  try {
    await v.write(0, Buffer.alloc(8 * BS, 0x42));
    await v.sync({ label: 'e1' });
    await clonesOf(v).create('c', 'e1');
    const o = clonesOf(v).overlay('c');
    for (const b of [0, 2, 6 * R]) o.write(b * BS, fill(`clone-${b}`));
    await o.sync();
  } finally {
    await v.close();
  }
  const cdir = path.join(dir, 'clones', 'c');
  const [data, crc, map] = ['overlay.data', 'overlay.crc', 'overlay.map'].map((f) => path.join(cdir, f));
  const marksAt = CLONE_CRC.lengthBytes + CLONE_CRC.entryBytes * BLOCKS;
  const bit = (b: Buffer, at: number, i: number) => ((b[at + (i >> 3)] ?? 0) & (1 << (i & 7))) !== 0;
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
    assert.ok(bit(durableBytes(crc), marksAt, 0) && bit(durableBytes(crc), marksAt, 6) && !bit(durableBytes(crc), marksAt, 3));

    const before = log.length;
    await o.sync();
    const order = log.slice(before).map((e) => `${e.op} ${path.basename(e.file)}${e.op === 'write' && e.file === crc ? (e.at! >= marksAt ? ' marks' : ' entries') : ''}`);
    assert.deepEqual(order, ['sync overlay.data', 'write overlay.crc entries', 'write overlay.crc entries', 'write overlay.crc entries', 'sync overlay.crc', 'write overlay.map', 'write overlay.map', 'sync overlay.map', 'write overlay.crc marks'], 'data, entries, map, then the marks cleared');
    assert.ok(log[log.length - 1].bytes!.every((x) => x === 0));

    assert.equal(await settle(o.write(6 * R * BS, fill('after the sync'))), true, 'a new interval: marked again');
    assert.equal(crcSyncs(), 4);
  } finally {
    await v.close();
    stopTracking();
  }
  assert.deepEqual(problems, []);
  const after = fs.readFileSync(crc);
  assert.ok(after.subarray(marksAt).every((x) => x === 0), 'closed: no region marked');
});
