import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FaultyStore } from '../src/archive/faulty-store';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { HeldSync, MemoryFileSystem } from '../src/storage/memory-file-system';
import { checkpoint } from '../src/volume/checkpoint';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { Rng } from './helpers/rng';

const SIZE = 128 * 1024;
const BS = 512;

/**
 * Review finding (DESIGN ordering rule 4): checkpoint() snapshots `covered` = the current
 * segment S and its end, then SegmentSet.durableThrough awaits the segments sealing *at that
 * moment* and syncs S only if S is still current after the await. A rollover during the await
 * seals S: its fdatasync runs in the background, durableThrough neither awaits it nor syncs S,
 * and the manifest is written covering S's bytes that are not durable. A power cut then leaves a
 * checkpoint covering a segment that is empty on disk: open refuses the volume (CORRUPT_LOG)
 * though nothing acknowledged was lost (the cut tail was never acknowledged).
 */
for (const race of [true, false]) test(race ? 'rule 4: a checkpoint whose segment is sealed while it waits still covers only durable log (power cut after it: the volume opens)' : 'control: the same without the rollover during the wait opens', async () => {
  let mem = new MemoryFileSystem({ directAlignBytes: 4096 });
  mem.holdSyncs = true;
  mem.mkdirp('/v');
  mem.mkdirp('/archive');
  let store = new FaultyStore(new LocalDirStore('/archive', mem));
  let withhold: (h: HeldSync) => boolean = () => false;
  const drive = async <T>(op: () => Promise<T>): Promise<T> => {
    let settled = false;
    let value: T | undefined;
    let error: unknown;
    op().then((v) => ((settled = true), (value = v)), (e) => ((settled = true), (error = e)));
    for (let idle = 0; ; ) {
      await new Promise((r) => setImmediate(r));
      if (settled) {
        if (error !== undefined) throw error;
        return value as T;
      }
      const held = mem.heldSyncs.filter((h) => !withhold(h));
      if (!held.length) {
        // Waiting on a withheld fsync only (S's, which the checkpoint must wait for): let it go.
        if (++idle >= 50 && mem.heldSyncs.length) withhold = () => false;
        assert.ok(idle < 200, 'an operation waits with no fsync to release');
        continue;
      }
      mem.releaseSync(held[0]);
    }
  };
  await drive(() => Volume.create('/v', { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024, archive: '/archive' }, { fs: mem, store }));
  const vol = await drive(() => Volume.open('/v', { fs: mem, store }));
  const core = whiteBox(vol);
  const rng = new Rng(9);
  const write = () => drive(() => vol.write(rng.int(SIZE / BS - 8) * BS, rng.bytes(BS * (1 + rng.int(8)))));
  const untilRollover = async () => {
    const id = core.segments.current.id;
    while (core.segments.current.id === id) await write();
  };
  await drive(() => vol.flush());
  await untilRollover(); // segment S-1 is sealing (its fsync held), S is current
  const s = core.segments.current.id;
  await write();
  const segFile = (id: number) => `/v/segments/${id.toString(16).padStart(8, '0')}.cvseg`;
  // Hold S's own file fsync for the rest: S must not become durable by itself.
  withhold = (h) => h.kind === 'file' && h.path === segFile(s);
  let done = false;
  const cp = checkpoint(core).then(() => (done = true));
  // While the checkpoint waits for S-1's fsync (held), S fills and is sealed.
  if (race) {
    await untilRollover();
    assert.ok(!done, 'the checkpoint is still waiting');
    assert.ok(core.segments.current.id === s + 1);
  } else {
    await write();
    withhold = () => false;
  }
  await drive(() => cp);
  const manifestCovers = s;
  const after = mem.cutNow();
  mem = after;
  mem.holdSyncs = true;
  mem.remove('/v/LOCK');
  store = new FaultyStore(new LocalDirStore('/archive', mem));
  withhold = () => false;
  try {
    const again = await drive(() => Volume.open('/v', { fs: mem, store }));
    await drive(() => again.close());
  } catch (err) {
    assert.fail(`after a power cut following a checkpoint that covered segment ${manifestCovers} (sealed while it waited, its fsync never done), open failed: ${(err as Error).message}`);
  }
});
