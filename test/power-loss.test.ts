import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { MemoryStore } from '../src/archive/memory-store';
import { Volume } from '../src/volume/volume';
import { PowerLossOptions, powerLossRun } from './helpers/power-loss-run';
import { seedsFor } from './helpers/seeds';
import { VolumeModel } from './helpers/volume-model';

/**
 * Fixed seeds, run in CI every time; each ran clean when it was added. 139255876 (ack mode, op
 * 26): a write whose first block, filled in from the live volume, is all zeros is logged as a
 * ZERO record and a WRITE record, two seqs; the model once assumed one.
 */
const CORPUS = [3, 4, 5, 6, 139255876];

const MODES: Array<[NonNullable<PowerLossOptions['mode']>, string]> = [
  ['mixed', 'held fsyncs released in any order, cuts inside operations, torn rewrites'],
  ['ack', 'fsyncs released newest first, cut the moment durability is acknowledged'],
];

for (const [mode, what] of MODES) {
  for (const { seed, source } of seedsFor(CORPUS)) {
    test(`power loss (${what}): model and engine agree (seed ${seed}, ${source})`, async (t) => {
      try {
        const s = await powerLossRun(seed, { mode });
        t.diagnostic(`${mode} seed ${seed}: ${s.ops} operations, ${s.cuts} power cuts, ${s.reopens} clean reopens, ${s.eventsChecked} event images checked`);
      } catch (err) {
        const e = err as Error;
        e.message = `${e.message}\n    (replay with CHRONOVOL_SEED=${seed} node --test dist/test/power-loss.test.js; mode ${mode})`;
        throw e;
      }
    });
  }
}

test('the model logs a write as the engine does: a run of all-zero blocks is its own record and seq', async () => {
  // Seed 139255876's op 26: one zero byte alone in an all-zero block, then data.
  const fs = new MemoryFileSystem();
  const store = new MemoryStore();
  fs.mkdirp('/v');
  const size = 128 * 1024;
  await Volume.create('/v', { sizeBytes: size, blockSizeBytes: 512, segmentSizeBytes: 64 * 1024 }, { fs, store });
  const vol = await Volume.open('/v', { fs, store });
  const model = new VolumeModel(size);
  for (const [off, data] of [[1024, Buffer.alloc(600, 7)], [96767, Buffer.concat([Buffer.alloc(1), Buffer.alloc(1722, 0x3e)])], [2047, Buffer.concat([Buffer.from([9]), Buffer.alloc(512), Buffer.from([5])])]] as const) {
    const before = vol.lastSeq;
    const records = model.writeRecords(off, data, 512, before + 1);
    await vol.write(off, data);
    assert.equal(vol.lastSeq, before + records, `a write at ${off}: one seq per record`);
    for (let seq = before + 1; seq <= vol.lastSeq; seq++) assert.ok((await vol.read(0, size, vol.resolvePoint(`seq:${seq}`))).equals(model.atSeq.get(seq)!), `seq:${seq} image`);
  }
  assert.deepEqual([...model.atSeq.keys()], [1, 2, 3, 4, 5, 6], '1 + 2 + 3 records');
  await vol.close();
});
