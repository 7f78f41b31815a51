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
 * The archive keeps 16 chunks (CHUNKS_CACHED = 2 × archiveReadsInFlight), and a look sends
 * objects ahead 4 chunks each. A look 8 MiB long, over objects smaller than it (4 MiB segments
 * here; compacted objects, fragmented images), sent three or four objects ahead at once: the
 * chunks of the nearer ones and the scan's own read-ahead evicted the farther ones before the
 * scan got there, each such object's chunks were fetched twice, and the scan's first read in it
 * was an isolated ranged read after all (24 MiB image, 1 MiB reads: 41 requests and 41 MiB
 * fetched, against 32 and 32 MiB with the look-ahead off). The archive now keeps 32 chunks.
 */
test('a scan through objects smaller than the look-ahead uses the chunks sent ahead before they are evicted (review finding)', async () => {
  const { dir, archive, image } = await archivedImage(24 * MiB, 4 * MiB, 20261204);
  const size = image.length;

  const store = new CountingStore(openStore({ archive }));
  const past = await Volume.open(dir, { store, readOnly: true, archiveCacheBytes: 0, cacheBytes: 0 });
  const needs: Set<number>[] = [];
  try {
    const point = past.resolvePoint('image');
    const index = whiteBox(past).index;
    const r = rangeResult(MiB / 4096);
    for (let at = 0; at < size; at += MiB) {
      index.floorRange(at / 4096, MiB / 4096, point.seqLimit, r);
      needs.push(new Set(Array.from(r.segs.subarray(0, MiB / 4096))));
      const got = await past.read(at, MiB, point);
      assert.ok(got.equals(image.subarray(at, at + MiB)), `bytes at ${at}`);
      await whiteBox(past).reader.archiveAheadStarted();
    }
  } finally {
    await past.close();
  }
  const data = store.ranges.filter((x) => x.length >= 4096);
  assert.ok(new Set(data.map((x) => x.key)).size >= 6, 'precondition: the image lies in several archived objects');
  const seen = new Set<string>();
  const again = data.filter((x) => {
    const k = `${x.key}@${x.offset}+${x.length}`;
    return seen.has(k) || !seen.add(k);
  });
  assert.deepEqual(again, [], 'no chunk is fetched twice in one scan (a chunk sent ahead was evicted before its read)');
  const atStart = new Set([...needs[0], ...needs[1]].map((seg) => archiveKey(seg)));
  const isolated = data.filter((x) => x.offset % MiB !== 0 && !atStart.has(x.key));
  assert.deepEqual(isolated, [], 'no isolated ranged read once the scan is under way');
});
