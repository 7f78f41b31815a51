import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forget } from '../src/retention/forget';
import { pin } from '../src/retention/pins';
import type { Core } from '../src/volume/core';
import { sealNow } from '../src/volume/turnover';
import { whiteBox } from '../src/volume/white-box';
import { Rng } from './helpers/rng';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

async function settle(core: Core): Promise<void> {
  const current = core.segments.current.id;
  await sealNow(core);
  assert.equal(await core.archiver.settled(current), undefined);
}

/**
 * Review finding: an incremental prune judges a segment's versions from its WRITE records only
 * (prune.ts recordLiveness over `type === WRITE`), so a ZERO/TRIM record there is never in
 * neededSeqs; planSegment counts it dead, the rewrite (or delete) leaves it out, and the index
 * drops the zero version (prunedTest by segment and seq). Live (and every kept point after the
 * zero) then reads the block's previous version: another point's bytes, in silence.
 */
test('prune walk: an incremental prune keeps a ZERO record live still reads (block 0 must read zeros, not its old bytes)', async () => {
  const rng = new Rng(4242);
  const { vol } = await freshVolume(SMALL);
  try {
    const core = whiteBox(vol);
    const hot = async (n: number) => {
      for (let i = 0; i < n; i++) {
        await vol.write((8 + rng.int(24)) * BS, rng.bytes(BS * (1 + rng.int(2))));
        if (i % 10 === 9) await vol.sync({ label: `w${i}` });
      }
    };
    await vol.write(0, Buffer.alloc(BS, 0xaa));
    const a = await vol.sync({ label: 'a' });
    await pin(vol, String(a.id), 'keep block 0 = 0xaa');
    await hot(300);
    forget(vol, { keepLast: 4 });
    await settle(core);
    const first = await vol.prune();
    assert.ok(!first.incremental && core.catalog.body.walked, 'the first prune walks everything and records it');
    await vol.writeZeroes(0, BS);
    const zeroSeq = vol.lastSeq;
    const zeroSeg = core.index.floor(0, zeroSeq)!.segment;
    await hot(300);
    forget(vol, { keepLast: 2 });
    await settle(core);
    assert.ok((await vol.read(0, BS)).equals(Buffer.alloc(BS)), 'block 0 reads zeros before the second prune');
    const second = await vol.prune();
    console.log(JSON.stringify({ zeroSeq, zeroSeg, incremental: second.incremental, deleted: second.deleted, rewritten: second.rewritten }));
    assert.ok(second.incremental, 'the second prune walks incrementally');
    const live = await vol.read(0, BS);
    assert.ok(live.equals(Buffer.alloc(BS)), `live block 0 reads 0x${live[0].toString(16)} after the incremental prune (zero version seq ${zeroSeq}, segment ${zeroSeg}), expected zeros`);
  } finally {
    await vol.close();
  }
});

test('control: the same history with a full second walk (a lower threshold) keeps the ZERO record', async () => {
  const rng = new Rng(4242);
  const { vol } = await freshVolume(SMALL);
  try {
    const core = whiteBox(vol);
    const hot = async (n: number) => {
      for (let i = 0; i < n; i++) {
        await vol.write((8 + rng.int(24)) * BS, rng.bytes(BS * (1 + rng.int(2))));
        if (i % 10 === 9) await vol.sync({ label: `w${i}` });
      }
    };
    await vol.write(0, Buffer.alloc(BS, 0xaa));
    const a = await vol.sync({ label: 'a' });
    await pin(vol, String(a.id), 'keep block 0 = 0xaa');
    await hot(300);
    forget(vol, { keepLast: 4 });
    await settle(core);
    const first = await vol.prune();
    assert.ok(!first.incremental && core.catalog.body.walked, 'the first prune walks everything and records it');
    await vol.writeZeroes(0, BS);
    const zeroSeq = vol.lastSeq;
    const zeroSeg = core.index.floor(0, zeroSeq)!.segment;
    await hot(300);
    forget(vol, { keepLast: 2 });
    await settle(core);
    assert.ok((await vol.read(0, BS)).equals(Buffer.alloc(BS)), 'block 0 reads zeros before the second prune');
    const second = await vol.prune({ rewriteThreshold: 0.49 });
    console.log(JSON.stringify({ zeroSeq, zeroSeg, incremental: second.incremental, deleted: second.deleted, rewritten: second.rewritten }));
    assert.ok(!second.incremental, 'the second prune walks everything');
    const live = await vol.read(0, BS);
    assert.ok(live.equals(Buffer.alloc(BS)), `live block 0 reads 0x${live[0].toString(16)} after the incremental prune (zero version seq ${zeroSeq}, segment ${zeroSeg}), expected zeros`);
  } finally {
    await vol.close();
  }
});
