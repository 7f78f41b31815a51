import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { forget } from '../src/retention/forget';
import { sealNow } from '../src/volume/turnover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { hotWrites } from './helpers/prune';
import { Rng } from './helpers/rng';
import { SMALL, freshVolume } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';
import { archiveAll } from './helpers/versioned-blocks';

const BS = 4096;

async function writeAndArchive(vol: Volume, byte: number): Promise<unknown> {
  for (let b = 0; b < 8; b++) await vol.write(b * BS, Buffer.alloc(BS, byte));
  await vol.sync({ label: `fill-${byte}` });
  const core = whiteBox(vol);
  const segment = core.segments.current.id;
  await sealNow(core);
  return core.archiver.settled(segment);
}

// DESIGN rule 29 (found by review): the fence first guarded the archiver only, so a copy whose
// archiving it stopped (ARCHIVE_CONFLICT) still pruned the shared archive by its own retention
// state and index: it rewrote and deleted the objects of the history both copies share and put
// its catalog, and the original could no longer read an event it still keeps. Prune now checks
// the fence before it starts and again before it puts or deletes anything.
test('archive fence: a copy the fence stopped does not prune (rewrite, delete, catalog) the other copy\'s archive', { timeout: 120_000 }, async () => {
  const rng = new Rng(2929);
  const model = new VolumeModel(SMALL.sizeBytes);
  const { dir, vol } = await freshVolume(SMALL);
  const events = await hotWrites(vol, model, rng, 400);
  await archiveAll(vol);
  await vol.close();
  const copy = path.join(path.dirname(dir), 'copy');
  fs.cpSync(dir, copy, { recursive: true });

  const a = await Volume.open(dir);
  const b = await Volume.open(copy);
  try {
    assert.equal(await writeAndArchive(a, 0xaa), undefined, 'the original archives');
    const err = await writeAndArchive(b, 0xbb);
    assert.ok(isChronoError(err, 'ARCHIVE_CONFLICT'), `the copy is fenced off: ${String(err)}`);
    // The copy forgets the shared events (its own business, in its own directory) and prunes.
    forget(b, { keepLast: 1 });
    const pruned = await b.prune().then((r) => `pruned: deleted ${r.deleted.length}, rewritten ${r.rewritten.length}, generation ${r.generation}`, (e: unknown) => (isChronoError(e) ? e.code : String(e)));
    // The original still keeps events[3]: it must read as it was.
    const e = events[3];
    let got: string;
    try {
      const data = await a.read(0, SMALL.sizeBytes / 2, a.resolvePoint(`event:${e.id}`));
      got = data.equals(model.atSeq.get(e.seq)!.subarray(0, SMALL.sizeBytes / 2)) ? 'bit-exact' : 'different bytes';
    } catch (x) {
      got = isChronoError(x) ? x.code : String(x);
    }
    assert.equal(got, 'bit-exact', `the original reads its kept event ${e.id} after the fenced copy's prune (${pruned})`);
  } finally {
    await a.close();
    await b.close();
  }
});
