import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ArchiveReader } from '../src/archive/archive-reader';
import { BackingStore } from '../src/archive/backing-store';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { isChronoError } from '../src/errors';
import { FILE_NAMES } from '../src/format/constants';
import { pin } from '../src/retention/pins';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { tmpDir } from './helpers/tmp';

const BS = 4096;
const blk = (b: number, v: number) => {
  const x = Buffer.alloc(BS, v);
  x.writeUInt32BE(b, 0);
  x.writeUInt32BE(v, 4);
  return x;
};

/**
 * A local-directory store whose size() of one key, once armed, answers only when the prune
 * deletes that key: an archived read's table fetch still in flight (as a GET on S3 can be) while a
 * prune rewrites the object.
 */
function gatedStore(inner: LocalDirStore, key: string) {
  let armed = false;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const store = new Proxy(inner, {
    get(t, k) {
      if (k === 'size') {
        return async (kk: string) => {
          const n = await t.size(kk);
          if (armed && kk === key) {
            armed = false;
            await released;
          }
          return n;
        };
      }
      // Released when the prune starts deleting the original (its catalog names the rewrite by
      // then), whose delete then takes a while: the read goes on while the original still exists.
      if (k === 'delete') {
        return async (kk: string) => {
          if (kk === key) {
            release();
            await new Promise((r) => setTimeout(r, 300));
          }
          return t.delete(kk);
        };
      }
      const f = (t as unknown as Record<string | symbol, unknown>)[k];
      return typeof f === 'function' ? f.bind(t) : f;
    },
  }) as BackingStore;
  return { store, arm: () => (armed = true) };
}

test('an archived read racing a prune that rewrites its object never pairs the old object\'s table with the new object\'s bytes (review finding)', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  await Volume.create(dir, { archive, sizeBytes: 256 * 1024, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 });
  let vol = await Volume.open(dir);
  // Segment 1: block 0 three times (two versions die), then blocks 1..12 once each, kept by a pin.
  for (let v = 1; v <= 3; v++) await vol.write(0, blk(0, v));
  for (let b = 1; b <= 12; b++) await vol.write(b * BS, blk(b, 1));
  const pinSeq = vol.lastSeq;
  for (let b = 1; b <= 12; b++) await vol.write(b * BS, blk(b, 2));
  for (let i = 0; i < 400; i++) await vol.write((20 + (i % 40)) * BS, blk(20 + (i % 40), 100 + i));
  await pin(vol, `seq:${pinSeq}`, 'keep the state after segment 1');
  vol.forgetEvents([], vol.lastSeq);
  await vol.close();

  const key = `${FILE_NAMES.archiveSegmentsPrefix}00000001.cvseg`;
  const { store, arm } = gatedStore(new LocalDirStore(archive), key);
  vol = await Volume.open(dir, { store, cacheBytes: 0, archiveCacheBytes: 0 });
  try {
    const core = whiteBox(vol);
    const v = core.index.floor(5, pinSeq)!;
    const at = core.index.where(5, v);
    assert.equal(at.segment, 1, 'block 5 at the pin lives in archived segment 1');
    // What the block's data (after its unit's CRC) is in the object the read begins on.
    const dataAt = at.offset + 4;
    const expected = Buffer.alloc(BS);
    const fd = fs.openSync(path.join(archive, key), 'r');
    fs.readSync(fd, expected, 0, BS, dataAt);
    fs.closeSync(fd);
    // A reader with a cold table cache over the volume's own catalog (which prune updates).
    const reader = new ArchiveReader(store, 4, undefined, core.archive.catalog);
    arm();
    assert.ok(expected.equals(blk(5, 1)), 'the original holds block 5 as the pin has it');
    const reading = reader.read(1, dataAt, BS).then((b) => b, (err: unknown) => err);
    const report = await vol.prune({ rewriteThreshold: 0.1 });
    assert.ok(report.rewritten.includes(1), `segment 1 was rewritten: ${JSON.stringify(report.rewritten)}`);
    const got = await reading;
    if (got instanceof Buffer) {
      assert.ok(got.equals(expected), `served block ${got.readUInt32BE(0)} version ${got.readUInt32BE(4)} where the object the read began on holds block ${expected.readUInt32BE(0)} version ${expected.readUInt32BE(4)}`);
    } else {
      assert.ok(isChronoError(got, 'ARCHIVE_MISSING') || isChronoError(got, 'VERSION_PRUNED'), `refused, with a stable code: ${String(got)}`);
    }
    // And through the volume, after the prune: block 5 as the pin holds it.
    assert.ok((await vol.read(5 * BS, BS, vol.resolvePoint(`seq:${pinSeq}`))).subarray(0, BS).equals(blk(5, 1)));
  } finally {
    await vol.close();
  }
});
