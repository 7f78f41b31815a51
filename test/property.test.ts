import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FaultyStore } from '../src/archive/faulty-store';
import { MemoryStore } from '../src/archive/memory-store';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { Volume } from '../src/volume/volume';
import { Rng, withSeed } from './helpers/rng';
import { seedsFor } from './helpers/seeds';
import { VolumeModel } from './helpers/volume-model';

const SIZE = 128 * 1024;
const BS = 512;

async function checkAll(vol: Volume, model: VolumeModel, rng: Rng): Promise<void> {
  assert.ok(vol.read(0, SIZE) instanceof Promise);
  assert.deepEqual(await vol.read(0, SIZE), model.live, 'live image');
  // The events are the ones the model saw acknowledged, not whatever the engine lists.
  model.checkEvents(vol.events);
  for (const e of model.events) {
    const want = model.atSeq.get(e.seq);
    assert.ok(want, `model has a snapshot for event ${e.id} (seq ${e.seq})`);
    assert.ok((await vol.read(0, SIZE, vol.resolvePoint(String(e.id)))).equals(want!), `event ${e.id} image`);
  }
  const seqs = [...model.atSeq.keys()];
  for (let i = 0; i < 6 && seqs.length; i++) {
    const seq = seqs[rng.int(seqs.length)];
    const got = await vol.read(0, SIZE, vol.resolvePoint(`seq:${seq}`));
    assert.ok(got.equals(model.atSeq.get(seq)!), `seq:${seq} image`);
    // A random partial read at that point, too.
    const off = rng.int(SIZE - 1);
    const len = 1 + rng.int(Math.min(5000, SIZE - off));
    assert.ok((await vol.read(off, len, vol.resolvePoint(`seq:${seq}`))).equals(model.atSeq.get(seq)!.subarray(off, off + len)), `seq:${seq} partial ${off}+${len}`);
  }
}

/** Fixed seeds run in CI every time, beside a random one (CHRONOVOL_SEED replays one). */
// 1139446037: the archive a full backlog behind at the end (primary at K + 1 + B).
const CORPUS = [101, 102, 103, 1139446037];

for (const [round, { seed, source }] of seedsFor(CORPUS).entries()) {
  // Odd rounds find the OS cache cold now and then: those reads finish on the "threadpool",
  // interleaved with writes, turnover and the recycling of the segments they read.
  const cold = round % 2 === 1 || source !== 'corpus';
  test(`random writes, syncs, reopens and turnover match the model (seed ${seed}, ${source}${cold ? ', reads often not cached' : ''})`, async () => {
    const rng = new Rng(seed);
    await withSeed(rng, async () => {
      const memory = new MemoryFileSystem();
      const fs = cold ? new FaultyFileSystem(memory) : memory;
      const store = new FaultyStore(new MemoryStore());
      fs.mkdirp('/vol');
      await Volume.create('/vol', { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 }, { fs, store });
      let vol = await Volume.open('/vol', { fs, store, cacheBytes: rng.bool() ? 32 * 1024 : 0 });
      const model = new VolumeModel(SIZE);
      model.snapshot(0);
      let running: Promise<void>[] = [];
      const settle = async () => {
        await Promise.all(running);
        running = [];
      };
      for (let op = 0; op < 400; op++) {
        if (fs instanceof FaultyFileSystem) fs.coldCache = rng.bool(0.5);
        // Now and then uploads take a few milliseconds, so a turnover's background archiving
        // overlaps the operations that follow it (and a close, which waits for it).
        if (rng.bool(0.1)) store.holdPuts = rng.bool(0.5) ? new Promise((r) => setTimeout(r, rng.int(4))) : undefined;
        const r = rng.next();
        if (r < 0.6) {
          const off = rng.bool(0.5) ? rng.int(SIZE / BS) * BS : rng.int(SIZE - 1);
          const len = Math.min(SIZE - off, 1 + rng.int(rng.bool(0.8) ? 4096 : 24 * 1024));
          const data = rng.bool(0.15) ? Buffer.alloc(len) : rng.bytes(len);
          await vol.write(off, data);
          model.write(off, data);
        } else if (r < 0.68) {
          const off = rng.int(SIZE - 1);
          const len = Math.min(SIZE - off, 1 + rng.int(8192));
          await vol.writeZeroes(off, len, rng.bool());
          model.zero(off, len);
        } else if (r < 0.78) {
          model.acknowledge(await vol.sync({ label: `e${op}`, kind: rng.bool() ? 'app' : 'crash' }));
        } else if (r < 0.8) {
          await settle();
          await vol.close();
          vol = await Volume.open('/vol', { fs, store });
        } else if (r < 0.82) {
          await checkAll(vol, model, rng);
        } else if (r < 0.86) {
          // A read left running while the next operations write, turn segments over and recycle.
          const seqs = [...model.atSeq.keys()];
          const seq = seqs[rng.int(seqs.length)];
          const off = rng.int(SIZE / BS) * BS;
          const len = Math.min(SIZE - off, BS * (1 + rng.int(64)));
          const want = model.atSeq.get(seq)!.subarray(off, off + len);
          running.push(vol.read(off, len, vol.resolvePoint(`seq:${seq}`)).then((got) => assert.ok(got.equals(want), `seq:${seq} ${off}+${len}, read while writing`)));
        }
        model.snapshot(vol.lastSeq);
      }
      await settle();
      await checkAll(vol, model, rng);
      const st = await vol.status();
      assert.ok(st.archive.segments! > 0, 'history reached the archive');
      // DESIGN rule 8: K + 1 + B, B the archive backlog (held uploads leave the archive behind).
      assert.ok(st.segments.inPrimary <= st.volume.workingSetSegments + 1 + st.archive.backlog!.limitSegments, `primary holds at most K + 1 + B segments: ${st.segments.inPrimary} of ${st.segments.primaryLimit}`);
      assert.equal(st.segments.primaryLimit, st.volume.workingSetSegments + 1 + st.archive.backlog!.limitSegments);
      // The working set alone rebuilds the live volume.
      store.unreachable = true;
      await vol.close();
      vol = await Volume.open('/vol', { fs, store });
      assert.deepEqual(await vol.read(0, SIZE), model.live, 'live image with the archive unreachable');
      store.unreachable = false;
      await checkAll(vol, model, rng);
      await vol.close();
    });
  });
}
