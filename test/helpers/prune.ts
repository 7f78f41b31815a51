import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ArchiveCatalog } from '../../src/archive/archive-catalog';
import { BackingStore } from '../../src/archive/backing-store';
import { FILE_NAMES } from '../../src/format/constants';
import { pin } from '../../src/retention/pins';
import { sealNow } from '../../src/volume/turnover';
import { Volume } from '../../src/volume/volume';
import { whiteBox } from '../../src/volume/white-box';
import { cli, cliJson } from './cli';
import { Rng } from './rng';
import { VolumeModel } from './volume-model';

const BS = 4096;

/** Bytes of every object under the archive's segments/. */
export function archiveSegmentBytes(archive: string): number {
  const d = path.join(archive, 'segments');
  return fs.readdirSync(d).reduce((n, f) => n + fs.statSync(path.join(d, f)).size, 0);
}

/**
 * Block-aligned writes to a few hot blocks (most versions die), an event every `every` writes.
 * `zeroShare` of them are ZERO or TRIM records instead (half each): zero versions live in their
 * record's segment like data ones, and prune must judge them the same way.
 */
export async function hotWrites(vol: Volume, model: VolumeModel, rng: Rng, writes: number, every = 8, o: { zeroShare?: number } = {}): Promise<Array<{ id: number; seq: number }>> {
  const events: Array<{ id: number; seq: number }> = [];
  for (let i = 0; i < writes; i++) {
    const off = rng.int(vol.sizeBytes / BS / 2) * BS;
    const blocks = 1 + rng.int(2);
    if (o.zeroShare && rng.bool(o.zeroShare)) {
      await vol.writeZeroes(off, blocks * BS, rng.bool());
      model.zero(off, blocks * BS);
    } else {
      const data = rng.bytes(BS * blocks);
      await vol.write(off, data);
      model.write(off, data);
    }
    model.snapshot(vol.lastSeq);
    if (i % every === every - 1) {
      const e = await vol.sync({ label: `w${i}` });
      model.snapshot(e.seq);
      events.push({ id: e.id, seq: e.seq });
    }
  }
  return events;
}


/**
 * What must hold after a daemon was SIGKILLed mid-prune (issue 15): the volume verifies, every
 * kept event exports bit-exact, a second prune finishes, verifies, and leaves the archive holding
 * exactly the catalog's keys, none of them catalogued as deleted.
 */
export async function assertPruneRecovers(ctx: string, dir: string, root: string, kept: Array<{ id: number; seq: number }>, model: VolumeModel, store: BackingStore): Promise<void> {
  const v = cli(['verify', dir]);
  assert.equal(v.status, 0, `${ctx}: ${v.stdout}${v.stderr}`);
  for (const e of kept) {
    const out = path.join(root, `e${e.id}.img`);
    assert.equal(cli(['export', dir, '--at', String(e.id), '--out', out]).status, 0, ctx);
    assert.ok(fs.readFileSync(out).equals(model.atSeq.get(e.seq)!), `${ctx}: event ${e.id} bit-exact`);
  }
  const again = cliJson<{ dryRun: boolean }>(['prune', dir, '--json']);
  assert.equal(again.dryRun, false);
  assert.equal(cli(['verify', dir]).status, 0, ctx);
  const cat = await ArchiveCatalog.load(store, undefined);
  assert.ok(cat.present, ctx);
  const prefix = FILE_NAMES.archiveSegmentsPrefix;
  const keys = await store.list(prefix);
  assert.ok(keys.length > 0, ctx);
  for (const k of keys) {
    const id = parseInt(k.slice(prefix.length, prefix.length + 8), 16);
    assert.equal(k, cat.keyOf(id), `${ctx}: leftover ${k}`);
    assert.ok(!cat.isDeleted(id), `${ctx}: ${k} is catalogued as deleted`);
  }
}

/**
 * A history where one event's state is thinnable: block 0 holds 0x05 at e0 (pinned), 0x11 at e1,
 * 0x22 after; other blocks are rewritten until the old segments are archived and out of
 * primary. Forgetting e1 (keep-last 1) and a prune then drop the 0x11 version: only e1 read it.
 */
export async function thinnableEvent(vol: Volume, seed: number): Promise<{ e0: number; e1: number; e1Seq: number }> {
  const rng = new Rng(seed);
  await vol.write(0, Buffer.alloc(BS, 0x05));
  const e0 = await vol.sync({ label: 'e0' });
  await pin(vol, String(e0.id), 'keep 0x05');
  await vol.write(0, Buffer.alloc(BS, 0x11));
  const e1 = await vol.sync({ label: 'e1' });
  await vol.write(0, Buffer.alloc(BS, 0x22));
  for (let i = 0; i < 200; i++) await vol.write((8 + rng.int(24)) * BS, rng.bytes(BS));
  await vol.sync({ label: 'last' });
  const core = whiteBox(vol);
  const current = core.segments.current.id;
  await sealNow(core);
  assert.equal(await core.archiver.settled(current), undefined);
  return { e0: e0.id, e1: e1.id, e1Seq: e1.seq };
}
