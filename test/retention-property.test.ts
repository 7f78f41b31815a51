import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { forget } from '../src/retention/forget';
import { listPins, pin, unpin } from '../src/retention/pins';
import { RetentionPolicy } from '../src/retention/policy';
import { Volume } from '../src/volume/volume';
import { Rng } from './helpers/rng';
import { seedsFor } from './helpers/seeds';
import { SMALL, freshVolume } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';
import * as path from 'node:path';
import { recoverFromArchive } from '../src/volume/recover';
import { sealNow } from '../src/volume/turnover';
import { whiteBox } from '../src/volume/white-box';
import { archiveSegmentBytes } from './helpers/prune';
import { tmpDir } from './helpers/tmp';

const BS = 4096;

/**
 * Writes, zeroes and trims, syncs, pins, unpins, forgets, prunes and reopens in random order (then a last prune
 * and a recovery from the archive alone) against the plain model
 * (an image per seq, the events the model still keeps): every kept event bit-exact, every
 * forgotten one refused, every point either refused (thinned) or bit-exact, pins never forgotten.
 */
test('retention property: kept points bit-exact, forgotten ones refused, pins hold (seeded)', async () => {
  for (const { seed, source } of seedsFor([15, 1501])) {
    console.log(`seed ${seed} (${source}); replay with CHRONOVOL_SEED=${seed}`);
    const rng = new Rng(seed);
    const { dir, archive, vol: v0 } = await freshVolume(SMALL);
    let vol: Volume = v0;
    const model = new VolumeModel(SMALL.sizeBytes);
    model.snapshot(0);
    let kept: Array<{ id: number; seq: number }> = [];
    const forgottenIds = new Set<number>();
    let forgets = 0;
    let prunes = 0;
    /** Whole-volume rewrites: history goes through the working set into the archive, where prune works. */
    const burstRng = new Rng(seed ^ 0x5eed);
    const burst = async (op: number) => {
      for (let k = 0; k < 2 * SMALL.sizeBytes / (8 * BS); k++) {
        const off = burstRng.int(SMALL.sizeBytes / BS - 8) * BS;
        const data = burstRng.bytes(8 * BS);
        await vol.write(off, data);
        model.write(off, data);
        model.snapshot(vol.lastSeq);
      }
      void op;
    };
    let freed = 0;
    const check = async (ctx: string) => {
      assert.deepEqual(vol.events.map((e) => e.id), kept.map((e) => e.id), `${ctx}: the event list is what the model keeps`);
      for (const e of kept) assert.ok((await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(e.id)))).equals(model.atSeq.get(e.seq)!), `${ctx}: event ${e.id} bit-exact`);
      for (const id of forgottenIds) assert.throws(() => vol.resolvePoint(String(id)), (err) => isChronoError(err, 'POINT_FORGOTTEN'), `${ctx}: event ${id} refused`);
      const from = vol.retention.continuousFromSeq;
      for (let k = 0; k < 8; k++) {
        const s = rng.int(vol.lastSeq + 1);
        let p;
        try {
          p = vol.resolvePoint(`seq:${s}`);
        } catch (err) {
          assert.ok(isChronoError(err, 'POINT_FORGOTTEN'), `${ctx}: seq ${s}: ${String(err)}`);
          assert.ok(s < from && !kept.some((e) => e.seq === s), `${ctx}: seq ${s} refused though reachable`);
          continue;
        }
        const want = model.atSeq.get(s);
        if (want) assert.ok((await vol.read(0, vol.sizeBytes, p)).equals(want), `${ctx}: seq ${s} bit-exact`);
      }
      assert.ok((await vol.read(0, vol.sizeBytes)).equals(model.live), `${ctx}: live`);
    };
    try {
      for (let op = 0; op < 200; op++) {
        const ctx = `seed ${seed} op ${op}`;
        const r = rng.next();
        if (r < 0.04) {
          await burst(op);
        } else if (r < 0.11) {
          // ZERO and TRIM records: zero versions live in their record's segment; prune must keep the needed ones.
          const off = rng.int(SMALL.sizeBytes / BS - 4) * BS;
          const len = (1 + rng.int(4)) * BS;
          await vol.writeZeroes(off, len, rng.bool());
          model.zero(off, len);
          model.snapshot(vol.lastSeq);
        } else if (r < 0.5) {
          const off = rng.bool(0.7) ? rng.int(SMALL.sizeBytes / BS) * BS : rng.int(SMALL.sizeBytes - 1);
          const data = rng.bytes(Math.min(SMALL.sizeBytes - off, 1 + rng.int(3 * BS)));
          await vol.write(off, data);
          model.write(off, data);
          model.snapshot(vol.lastSeq);
        } else if (r < 0.7) {
          const e = await vol.sync({ label: `e${op}` });
          model.snapshot(e.seq);
          kept.push({ id: e.id, seq: e.seq });
        } else if (r < 0.78 && kept.length) {
          await pin(vol, String(kept[rng.int(kept.length)].id), `op ${op}`);
        } else if (r < 0.82) {
          const mine = listPins(vol).filter((p) => p.holder === 'user');
          if (mine.length) unpin(vol, mine[rng.int(mine.length)].point);
        } else if (r < 0.9) {
          const policy: RetentionPolicy = { keepLast: rng.int(4) };
          if (rng.bool(0.3)) policy.keepAllWithinMs = rng.int(30);
          const pinned = new Set(listPins(vol).map((p) => p.seq));
          const rep = forget(vol, policy, { dryRun: rng.bool(0.2) });
          for (const e of rep.forgotten) assert.ok(!pinned.has(e.seq), `${ctx}: pinned event ${e.id} forgotten`);
          assert.ok(rep.kept.filter((e) => e.reasons.includes('last')).length <= policy.keepLast!, ctx);
          if (!rep.dryRun) {
            forgets++;
            for (const e of rep.forgotten) forgottenIds.add(e.id);
            kept = kept.filter((e) => !forgottenIds.has(e.id));
          }
          await check(`${ctx} after forget`);
        } else if (r < 0.95) {
          const rep = await vol.prune({ rewriteThreshold: rng.bool() ? 0.5 : 0.1 });
          prunes++;
          freed += rep.freedBytes;
          await check(`${ctx} after prune`);
        } else {
          await vol.close();
          vol = await Volume.open(dir);
          await check(`${ctx} after reopen`);
        }
      }
      await check(`seed ${seed} at the end`);
      assert.ok(forgets > 3 && forgottenIds.size > 3, `seed ${seed}: ${forgets} forgets, ${forgottenIds.size} events forgotten`);
      // A last forget and prune, everything archived, then the archive alone: the same answers.
      await burst(-1);
      await burst(-1);
      const last = forget(vol, { keepLast: 1 });
      for (const e of last.forgotten) forgottenIds.add(e.id);
      kept = kept.filter((e) => !forgottenIds.has(e.id));
      const core = whiteBox(vol);
      const current = core.segments.current.id;
      await sealNow(core);
      assert.equal(await core.archiver.settled(current), undefined);
      const before = archiveSegmentBytes(archive);
      const rep = await vol.prune();
      freed += rep.freedBytes;
      assert.ok(archiveSegmentBytes(archive) <= before - rep.freedBytes, `seed ${seed}: the archive shrank by what prune freed`);
      assert.ok(prunes > 0 && freed > 0, `seed ${seed}: ${prunes} prunes freed ${freed} bytes`);
      await check(`seed ${seed} after the last prune`);
      await vol.close();
      const rdir = path.join(tmpDir(), 'rec');
      await recoverFromArchive(archive, rdir);
      vol = await Volume.open(rdir);
      await check(`seed ${seed} recovered`);
    } finally {
      await vol.close();
    }
  }
});
