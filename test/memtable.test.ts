import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Memtable } from '../src/index/memtable';
import { Rng, withSeed } from './helpers/rng';

/** freeze() must give the run a plain model gives: (block, seq) ascending, every version once. */
function check(order: Array<[number, number]>): void {
  const m = new Memtable();
  order.forEach(([block, seq], i) => m.add(block, seq, 1 + (i % 3), 64 + i * 4100));
  const run = m.freeze();
  const want = order.map(([block, seq], i) => ({ block, seq, seg: 1 + (i % 3), off: 64 + i * 4100 }))
    .sort((a, b) => a.block - b.block || a.seq - b.seq);
  assert.equal(run.count, want.length);
  want.forEach((w, k) => {
    assert.deepEqual([run.blocks[k], run.seqs[k], run.segs[k], run.offs[k]], [w.block, w.seq, w.seg, w.off], `entry ${k}`);
  });
}

test('memtable freeze: blocks first written in ascending order (the no-sort path)', () => {
  check(Array.from({ length: 1000 }, (_, i) => [i, i + 1]));
  // Ascending first writes, then rewrites of earlier blocks: chains, keys still ascending.
  check([[1, 1], [2, 2], [5, 3], [1, 4], [2, 5], [9, 6], [1, 7]]);
});

test('memtable freeze: random blocks (the sort path), seeded', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    for (let round = 0; round < 20; round++) {
      const n = 1 + rng.int(2000);
      check(Array.from({ length: n }, (_, i) => [rng.int(500), i + 1]));
    }
  });
});
