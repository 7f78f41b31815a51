import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SortedRun } from '../src/index/sorted-run';
import { Rng, withSeed } from './helpers/rng';

/** A run of the given blocks (sorted here), with seqs from `firstSeq` in arrival order. */
function run(blockList: number[], firstSeq: number): { run: SortedRun; rows: number[][] } {
  const rows = blockList.map((b, i) => [b, firstSeq + i, 1 + (b % 5), 64 + i]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const col = (c: number) => Float64Array.from(rows, (r) => r[c]);
  return { run: new SortedRun(col(0), col(1), Uint32Array.from(rows, (r) => r[2]), Uint32Array.from(rows, (r) => r[3]), firstSeq, firstSeq + Math.max(0, blockList.length - 1)), rows };
}

/** merge() against a plain model: (block, seq) ascending, every entry of both runs once. */
test('sorted run merge: disjoint, interleaved, clustered and overlapping block ranges, seeded', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const shapes: Array<[string, (n: number, base: number) => number[]]> = [
      ['sequential', (n, base) => Array.from({ length: n }, (_, i) => base + i)],
      ['random', (n) => Array.from({ length: n }, () => rng.int(3 * n + 1))],
      ['clustered', (n) => Array.from({ length: n }, (_, i) => Math.floor(i / 40) * 1000 + rng.int(60))],
      ['repeats', (n) => Array.from({ length: n }, () => rng.int(7))],
    ];
    for (let round = 0; round < 60; round++) {
      const [na, nb] = [rng.int(rng.bool(0.2) ? 3 : 500), rng.int(rng.bool(0.2) ? 3 : 500)];
      const [sa, sb] = [shapes[rng.int(shapes.length)], shapes[rng.int(shapes.length)]];
      const older = run(sa[1](na, rng.int(1000)), 1);
      const newer = run(sb[1](nb, rng.int(1000)), 1 + na);
      const merged = SortedRun.merge(older.run, newer.run);
      const want = [...older.rows, ...newer.rows].sort((x, y) => x[0] - y[0] || x[1] - y[1]);
      assert.equal(merged.count, want.length, `round ${round} (${sa[0]} + ${sb[0]})`);
      want.forEach((w, i) => assert.deepEqual([merged.blocks[i], merged.seqs[i], merged.segs[i], merged.offs[i]], w, `round ${round} (${sa[0]} + ${sb[0]}), entry ${i}`));
    }
  });
});

/** Seq-range queries against a plain filter of the rows: every range shape, inside and straddling. */
test('sorted run seq ranges: versionsInSeqRange and blocksInSeqRange list exactly the versions in (from, to], seeded', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    for (let round = 0; round < 40; round++) {
      const n = 1 + rng.int(400);
      const firstSeq = 1 + rng.int(50);
      const { run: r, rows } = run(Array.from({ length: n }, () => rng.int(rng.bool(0.5) ? 9 : 3 * n)), firstSeq);
      for (let q = 0; q < 20; q++) {
        const from = firstSeq - 3 + rng.int(n + 6);
        const to = from + rng.int(n + 3);
        const want = rows.filter((w) => w[1] > from && w[1] <= to);
        const got: number[][] = [];
        r.versionsInSeqRange(from, to, (b, s, g, o) => got.push([b, s, g, o]));
        const bySeq = (x: number[], y: number[]) => x[1] - y[1] || x[0] - y[0];
        assert.deepEqual(got.slice().sort(bySeq), want.slice().sort(bySeq), `round ${round}: versions in (${from}, ${to}]`);
        const blocks: number[] = [];
        r.blocksInSeqRange(from, to, (b) => blocks.push(b));
        assert.deepEqual(blocks.sort((a, b) => a - b), want.map((w) => w[0]).sort((a, b) => a - b), `round ${round}: blocks in (${from}, ${to}]`);
      }
    }
  });
});
