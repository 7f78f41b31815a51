import assert from 'node:assert/strict';
import { test } from 'node:test';
import { archiveKey } from '../src/archive/archive-object';
import { openStore } from '../src/archive/open-store';
import { rangeResult } from '../src/index/version-index';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { archivedImage } from './helpers/archived-image';
import { CountingStore } from './helpers/counting-store';

const MiB = 1024 * 1024;

/**
 * 161d866 dropped 4aa816f's 'scan' flag (the first read of a scan in each object goes by chunks)
 * as made redundant by the look-ahead. But BlockReader.archiveAhead sends each object ahead once
 * "while among the last 16 sent" (archiveAheadSegs: by segment id, for the reader's lifetime,
 * whatever the image or position). A second scan through the same objects (the same image read
 * again, or another point sharing them) is sent into none of them: its first read in every
 * object is an isolated ranged read again, the per-object restart 4aa816f removed.
 */
test('a second scan of an archived image is sent ahead into the next objects as the first was (review finding)', async () => {
  // Larger than the archive's 32 chunks in memory, in a few objects (fewer than 16), each as
  // long as the look-ahead (smaller ones: archive-ahead-evicted).
  const { dir, archive, image } = await archivedImage(48 * MiB, 8 * MiB, 20261204);
  const size = image.length;

  const store = new CountingStore(openStore({ archive }));
  const past = await Volume.open(dir, { store, readOnly: true, archiveCacheBytes: 0, cacheBytes: 0 });
  try {
    const point = past.resolvePoint('image');
    const index = whiteBox(past).index;
    const r = rangeResult(MiB / 4096);
    for (let scan = 1; scan <= 2; scan++) {
      const from = store.ranges.length;
      const needs: Set<number>[] = [];
      for (let at = 0; at < size; at += MiB) {
        index.floorRange(at / 4096, MiB / 4096, point.seqLimit, r);
        needs.push(new Set(Array.from(r.segs.subarray(0, MiB / 4096))));
        const got = await past.read(at, MiB, point);
        assert.ok(got.equals(image.subarray(at, at + MiB)), `scan ${scan}: bytes at ${at}`);
        await whiteBox(past).reader.archiveAheadStarted();
      }
      const data = store.ranges.slice(from).filter((x) => x.length >= 4096);
      assert.ok(new Set(data.map((x) => x.key)).size >= 4, `precondition: scan ${scan} reads several archived objects`);
      // As archive-scan-segments: an isolated (unaligned) ranged read only in the objects the scan's first two reads need.
      const atStart = new Set([...needs[0], ...needs[1]].map((seg) => archiveKey(seg)));
      const isolated = data.filter((x) => x.offset % MiB !== 0 && !atStart.has(x.key));
      assert.deepEqual(isolated, [], `scan ${scan}: no isolated ranged read once the scan is under way`);
    }
  } finally {
    await past.close();
  }
});
