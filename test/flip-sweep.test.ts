import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatCounts, runFlipSweep } from '../bench/flip-sweep';

/**
 * The byte-flip sweep of issue 10 in small: one file of each kind, a sample of header bytes and a
 * few payload bytes each, cold cache. A fixed seed (CHRONOVOL_SEED replays another); the full
 * sweep is scripts/flip-sweep.
 */
test('flip sweep (small, fixed seed): no flipped byte in any kind of file is served or passes verify silently', async (t) => {
  const seed = process.env.CHRONOVOL_SEED ? Number(process.env.CHRONOVOL_SEED) : 20261201;
  t.diagnostic(`seed ${seed}`);
  const r = await runFlipSweep({ seed, payloadFlips: 4, headerStride: 16, filesPerKind: 1 });
  for (const line of formatCounts(r).split('\n')) t.diagnostic(line);
  const kinds = Object.keys(r.kinds).sort();
  assert.deepEqual(kinds, ['archive-object', 'archive-superblock', 'index-run', 'manifest', 'segment-current', 'segment-sealed', 'superblock']);
  for (const [kind, c] of Object.entries(r.kinds)) {
    assert.ok(c.flips > 0, `${kind}: flipped something`);
    assert.equal(c.refusedAtOpen + c.readFailed + c.verifyReported + c.served + c.silent, c.flips, `${kind}: every flip has one outcome`);
  }
  assert.deepEqual(r.failures, [], `replay with CHRONOVOL_SEED=${seed}`);
});
