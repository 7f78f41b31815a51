import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FaultyStore } from '../src/archive/faulty-store';
import { openStore } from '../src/archive/open-store';
import { FILE_NAMES } from '../src/format/constants';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { Volume } from '../src/volume/volume';
import { freshVolume } from './helpers/volumes';
import { sleep, versionedBlock as blk } from './helpers/versioned-blocks';

// An archive unreachable at open leaves the catalog unread: objects a prune compacted are then
// missing (reads fail, never other bytes). Before the fix nothing read the catalog again until
// the next prune, so every such read kept failing after the archive came back.

const BS = 4096;

for (const readOnly of [false, true]) {
  test(`catalog unread at open (${readOnly ? 'read-only' : 'read-write'}): once the archive answers, objects a prune compacted are read again without a prune`, async () => {
    const { dir, vol, archive } = await freshVolume({ sizeBytes: 256 * 1024, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 });
    // Every few writes one keeps a block's version that only an event reads: what prune compacts around.
    const kept: Array<{ label: string; image: Buffer }> = [];
    for (let i = 0; i < 400; i++) {
      await vol.write((i % 48) * BS, blk(i % 48, i));
      if (i % 50 === 49) {
        const e = await vol.sync({ label: `e${i}` });
        kept.push({ label: e.label, image: await vol.read(0, vol.sizeBytes, vol.resolvePoint(e.label)) });
      }
    }
    await vol.sync({ label: 'end' });
    const keepLabels = new Set(kept.filter((_, j) => j % 2 === 0).map((k) => k.label));
    vol.forgetEvents(vol.events.filter((e) => !keepLabels.has(e.label) && e.label !== 'end').map((e) => e.id), vol.lastSeq);
    const r = await vol.prune({ rewriteThreshold: 0.01 });
    assert.ok(r.rewritten.length > 0, `prune compacted some segment: ${JSON.stringify({ ...r, kept: undefined })}`);
    await vol.close();

    const store = new FaultyStore(openStore(archive, { fs: new NodeFileSystem() }));
    let down = true;
    store.failWhen = (_op, key) => down && key === FILE_NAMES.archiveCatalog;
    const v = await Volume.open(dir, { store, readOnly, catalogRefresh: { baseDelayMs: 20, maxDelayMs: 50 } });
    try {
      const wanted = kept.filter((k) => keepLabels.has(k.label));
      const readAll = async () => {
        for (const k of wanted) assert.ok((await v.read(0, v.sizeBytes, v.resolvePoint(k.label))).equals(k.image), `${k.label} bit-exact`);
      };
      // While unread: some kept event needs a compacted object, and its read fails (not other bytes).
      await assert.rejects(readAll(), (e: Error) => !/bit-exact/.test(e.message));
      down = false;
      const end = Date.now() + 10_000;
      for (;;) {
        try {
          await readAll();
          break;
        } catch (err) {
          if (/bit-exact/.test((err as Error).message) || Date.now() > end) throw err;
          await sleep(50);
        }
      }
    } finally {
      await v.close();
    }
  });
}
