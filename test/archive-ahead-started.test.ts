import assert from 'node:assert/strict';
import { test } from 'node:test';
import { archiveKey } from '../src/archive/archive-object';
import { openStore } from '../src/archive/open-store';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { archivedImage } from './helpers/archived-image';
import { CountingStore } from './helpers/counting-store';

const MiB = 1024 * 1024;

/** A counting store whose size() of the keys in `held` answers only 150 ms later (a slower HEAD/stat). */
class SlowTableStore extends CountingStore {
  readonly held = new Set<string>();
  override async size(key: string): Promise<number | undefined> {
    if (this.held.has(key)) await new Promise((r) => setTimeout(r, 150));
    return super.size(key);
  }
}

/**
 * BlockReader.archiveAheadStarted() says it "settles once the last archive look-ahead has asked
 * for its chunks", and archive-scan-segments waits on it before each read. A look sends up to two
 * objects ahead, but it returns only the LAST prefetch's promise: when the first object's table
 * comes later than the second's, it settles before the first has asked for anything.
 * archive-scan-segments then fails now and then ("segment 4, first needed by read 5, was first
 * asked for during read 5": 3 of 142 runs on a loaded 2-CPU box). Here the first object of each
 * look that sends two has a slow table, so the race goes the same way every time.
 */
test('archiveAheadStarted() settles only once every object the last look sent ahead has asked for its chunks (review finding)', async () => {
  // The geometry of archive-scan-segments: an 8 MiB image in 2 MiB segments, archived only.
  const { dir, archive, image } = await archivedImage(8 * MiB, 2 * MiB, 20261203);

  const store = new SlowTableStore(openStore({ archive }));
  const past = await Volume.open(dir, { store, readOnly: true, archiveCacheBytes: 0, cacheBytes: 0 });
  try {
    const point = past.resolvePoint('image');
    const core = whiteBox(past);
    // Which objects each read's look sends ahead; from the third read on, the first of two is slow.
    let sent: number[] = [];
    let readNo = 0;
    const prefetch = core.archive.prefetch.bind(core.archive);
    core.archive.prefetch = (segmentId, primaryOffset, chunks) => {
      if (readNo >= 2 && sent.length === 0) store.held.add(archiveKey(segmentId));
      sent.push(segmentId);
      return prefetch(segmentId, primaryOffset, chunks);
    };
    let looksOfTwo = 0;
    for (let at = 0; at < image.length; at += MiB, readNo++) {
      sent = [];
      const got = await past.read(at, MiB, point);
      assert.ok(got.equals(image.subarray(at, at + MiB)), `bytes at ${at}`);
      await core.reader.archiveAheadStarted();
      if (readNo >= 2 && sent.length === 2) looksOfTwo++;
      for (const seg of sent) {
        assert.ok(
          store.ranges.some((x) => x.key === archiveKey(seg) && x.length >= 4096),
          `read ${readNo} sent segments ${sent.join(', ')} ahead; archiveAheadStarted() settled before segment ${seg} asked for any chunk`,
        );
      }
    }
    assert.ok(looksOfTwo >= 1, 'precondition: a look after the scan began sent two objects ahead');
  } finally {
    await past.close();
  }
});
