import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { recoverFromArchive } from '../src/volume/recover';
import { Point } from '../src/volume/events';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';
import { freshVolume } from './helpers/volumes';

// Issue 10 (never serve wrong data), bugs 3-5 of the review: recovery from an archive a prune
// thinned. Each test failed before its fix (see the commit messages for what it showed).

const BS = 4096;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Block `b` at version `v`: the version is readable from the block's bytes 4-7. */
const blk = (b: number, v: number) => {
  const x = Buffer.alloc(BS, v & 0xff);
  x.writeUInt32BE(b, 0);
  x.writeUInt32BE(v, 4);
  return x;
};
const versionOf = async (vol: Volume, block: number, p?: Point) => (await vol.read(block * BS, BS, p)).readUInt32BE(4);

function refusedForgotten(vol: Volume, point: string): void {
  assert.throws(() => vol.resolvePoint(point), (e: unknown) => {
    assert.ok(isChronoError(e, 'POINT_FORGOTTEN'), `${point}: ${(e as Error).message}`);
    return true;
  });
}

test('recover after prune: a time inside a thinned span stays POINT_FORGOTTEN, never the kept event before it', async () => {
  const { vol: v0, archive } = await freshVolume({ sizeBytes: 256 * 1024, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 });
  let vol = v0;
  for (let b = 0; b < 4; b++) await vol.write(b * BS, blk(b, 1));
  await vol.sync({ label: 'keep-1' });
  await sleep(30);
  for (let b = 0; b < 4; b++) await vol.write(b * BS, blk(b, 2)); // only points between the two events read these
  await sleep(30);
  const T = new Date(Date.now()).toISOString();
  await sleep(30);
  for (let b = 0; b < 4; b++) await vol.write(b * BS, blk(b, 3));
  await vol.sync({ label: 'keep-2' });
  for (let i = 0; i < 300; i++) await vol.write((20 + (i % 40)) * BS, blk(20 + (i % 40), 100 + i));
  await vol.sync({ label: 'end' });
  assert.equal(await versionOf(vol, 0, vol.resolvePoint(T)), 2, 'before the forget, T reads version 2');
  vol.forgetEvents([], vol.lastSeq); // every event kept; the span between them thinned
  refusedForgotten(vol, T);
  const r = await vol.prune({ rewriteThreshold: 0.01 });
  assert.ok(r.deleted.length + r.rewritten.length > 0, 'prune dropped the versions only T read');
  refusedForgotten(vol, T);
  await vol.close();

  const target = path.join(tmpDir(), 'recovered');
  await recoverFromArchive(archive, target);
  vol = await Volume.open(target);
  try {
    refusedForgotten(vol, T); // before the fix: seqLimit of keep-1, block 0 at version 1
    assert.equal(await versionOf(vol, 0, vol.resolvePoint('keep-1')), 1);
    assert.equal(await versionOf(vol, 0, vol.resolvePoint('keep-2')), 3);
  } finally {
    await vol.close();
  }
});

test('sync never issues an event id a forget recorded: the event it returns is the one it recorded, and it is listed', async () => {
  const { vol } = await freshVolume();
  try {
    vol.retention.forget([1, 2], 0); // a retention state ahead of the log (as a recovery once left)
    await vol.write(0, blk(0, 1));
    const e = await vol.sync({ label: 'after' });
    assert.ok(e, 'sync returns an event'); // before the fix: undefined (id 1 was dropped as forgotten)
    assert.equal(e.id, 3);
    assert.deepEqual(vol.events.map((x) => [x.id, x.label]), [[3, 'after']]);
    assert.equal(vol.resolvePoint('after').seqLimit, e.seq);
  } finally {
    await vol.close();
  }
});
