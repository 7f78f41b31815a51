import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { openStore } from '../src/archive/open-store';
import { Volume } from '../src/volume/volume';
import { CountingStore } from './helpers/counting-store';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

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
test('archive: a scan of an archived image goes by chunks from the first read in every segment\'s object', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  await Volume.create(dir, { sizeBytes: 8 * MiB, blockSizeBytes: 4096, segmentSizeBytes: 2 * MiB, archive });
  const image = new Rng(20261203).bytes(8 * MiB);
  const vol = await Volume.open(dir);
  for (let at = 0; at < image.length; at += MiB) await vol.write(at, image.subarray(at, at + MiB));
  await vol.sync({ label: 'image' });
  // Written over four times: the image's segments leave the working set and live in the archive only.
  for (let pass = 0; pass < 4; pass++) for (let at = 0; at < image.length; at += MiB) await vol.write(at, Buffer.alloc(MiB, pass + 1));
  await vol.close();

  const store = new CountingStore(openStore({ archive }));
  const past = await Volume.open(dir, { store, readOnly: true, archiveCacheBytes: 0, cacheBytes: 0 });
  const point = past.resolvePoint('image');
  for (let at = 0; at < image.length; at += MiB) {
    const got = await past.read(at, MiB, point);
    assert.ok(got.equals(image.subarray(at, at + MiB)), `bytes at ${at}`);
  }
  await past.close();
  // Data reads only: the small reads at an object's end are its trailer and offset table.
  const data = store.ranges.filter((r) => r.length >= 4096);
  const objects = new Set(data.map((r) => r.key));
  assert.ok(objects.size >= 3, `precondition: the image lies in several archived objects (${objects.size})`);
  const isolated = data.filter((r) => r.offset % ARCHIVE_CHUNK_BYTES !== 0);
  assert.ok(isolated.length <= 1, `only the scan's first read is an isolated ranged read: ${JSON.stringify(isolated)}`);
});
