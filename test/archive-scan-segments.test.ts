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
/** archive-reader.ts: archived objects are fetched by scans in aligned chunks of this size. */
const ARCHIVE_CHUNK_BYTES = MiB;

/**
 * A scan of a past image that lives only in the archive crosses from one segment's object into
 * the next. The reader's scan detection was per object, so the first read in each new object was
 * an isolated ranged read with nothing fetched ahead, and the scan's read-ahead started over at
 * every segment boundary (out of S3, a round trip or two each). The block reader knows the read is
 * part of a scan of the image and says so: only the scan's very first read is isolated.
 */
test('archive: a scan of an archived image goes by chunks from the first read in every segment\'s object, and its read-ahead crosses into the next object', async () => {
  // Written over four times: the image's segments leave the working set and live in the archive only.
  const { dir, archive, image } = await archivedImage(8 * MiB, 2 * MiB, 20261203);

  const store = new CountingStore(openStore({ archive }));
  const past = await Volume.open(dir, { store, readOnly: true, archiveCacheBytes: 0, cacheBytes: 0 });
  const point = past.resolvePoint('image');
  // Which archived objects each 1 MiB read needs (the index, white-box), and which store
  // requests were made while each read ran.
  const index = whiteBox(past).index;
  const r = rangeResult(MiB / 4096);
  const needs: Set<number>[] = [];
  const before: number[] = [];
  for (let at = 0; at < image.length; at += MiB) {
    index.floorRange(at / 4096, MiB / 4096, point.seqLimit, r);
    needs.push(new Set(Array.from(r.segs.subarray(0, MiB / 4096))));
    before.push(store.ranges.length);
    const got = await past.read(at, MiB, point);
    assert.ok(got.equals(image.subarray(at, at + MiB)), `bytes at ${at}`);
    // A look-ahead may still be loading its object's table (a local file): let it ask for its
    // chunks before the next read, as the time a scan spends on its 8 MiB ahead would.
    await whiteBox(past).reader.archiveAheadStarted();
  }
  before.push(store.ranges.length);
  await past.close();
  // Data reads only: the small reads at an object's end are its trailer and offset table.
  const data = store.ranges.filter((x) => x.length >= 4096);
  const objects = new Set(data.map((x) => x.key));
  assert.ok(objects.size >= 3, `precondition: the image lies in several archived objects (${objects.size})`);
  // An isolated (unaligned) ranged read only where the scan had not begun: in the objects the
  // first two reads need (the second is the first the scan tracker counts as a scan).
  const atStart = new Set([...needs[0], ...needs[1]].map((seg) => archiveKey(seg)));
  const isolated = data.filter((x) => x.offset % ARCHIVE_CHUNK_BYTES !== 0 && !atStart.has(x.key));
  assert.deepEqual(isolated, [], 'no isolated ranged read once the scan is under way');
  // The read-ahead crosses objects: an object the scan enters after its first two reads (the
  // second is the first the scan tracker counts as a scan) was asked for during an earlier read.
  const readDuring = (j: number) => before.findIndex((b, i) => j >= b && j < before[i + 1]);
  let crossed = 0;
  for (let i = 2; i < needs.length; i++) {
    for (const seg of needs[i]) {
      if (needs.slice(0, i).some((n) => n.has(seg))) continue; // entered earlier
      const j = store.ranges.findIndex((x) => x.key === archiveKey(seg) && x.length >= 4096);
      assert.ok(j >= 0 && readDuring(j) < i, `segment ${seg}, first needed by read ${i}, was first asked for during read ${readDuring(j)}`);
      crossed++;
    }
  }
  assert.ok(crossed >= 2, `precondition: the scan entered ${crossed} objects after its start`);
});
