import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { blockHistory } from '../src/history/block-history';
import { BlockExtent, extentsOf, indexDiff } from '../src/history/index-diff';
import { Memtable } from '../src/index/memtable';
import { SortedRun } from '../src/index/sorted-run';
import { Volume } from '../src/volume/volume';
import { cli, cliJson } from './helpers/cli';
import { Rng, withSeed } from './helpers/rng';
import { freshVolume } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';
import { whiteBox } from '../src/volume/white-box';

/** Seeds CI always runs; CHRONOVOL_SEED=<n> replays one (and runs only it). */
const CORPUS = process.env.CHRONOVOL_SEED ? [Number(process.env.CHRONOVOL_SEED)] : [11, 2024, 77777, 31337];
const SIZE = 256 * 1024;
const BS = 4096;
const BLOCKS = SIZE / BS;

/** One version in the plain model: the op wrote it with a seq in (seqAfter, seqTo]. */
interface ModelVersion { seqAfter: number; seqTo: number; kind: 'write' | 'zero|trim'; sha: string; eventSeq?: number }

const sha16 = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** Blocks with a model version in (lo, hi]: what a by-version diff must list, exactly. */
function modelDiff(versions: ModelVersion[][], lo: number, hi: number): number[] {
  const out: number[] = [];
  versions.forEach((vs, b) => {
    if (vs.some((v) => v.seqAfter >= lo && v.seqTo <= hi)) out.push(b);
  });
  return out;
}

function blocksOf(extents: BlockExtent[]): number[] {
  return extents.flatMap((e) => Array.from({ length: e.blockCount }, (_, k) => e.firstBlock + k));
}

// Seq gaps below 4 a version sort a run's seq order by counting; wider ones by comparison.
for (const gap of [3, 20]) test(`seq-range and per-block version walks match a brute-force scan (sorted runs, merged runs, memtable; seq gaps < ${gap})`, async () => {
  const rng = new Rng(CORPUS[0]);
  await withSeed(rng, async () => {
    const all: number[][] = [];
    const mem = new Memtable();
    let older: SortedRun | undefined;
    let seq = 1;
    for (let part = 0; part < 3; part++) {
      for (let i = 0; i < 400; i++, seq += rng.int(gap)) {
        const b = rng.int(50);
        mem.add(b, seq, 1, 64 + i);
        all.push([b, seq]);
      }
      seq++;
      const run = mem.freeze();
      older = older ? SortedRun.merge(older, run) : run;
      // (The memtable is fresh again; the last part stays in it below.)
      Object.assign(mem, new Memtable());
    }
    const tail = new Memtable();
    for (let i = 0; i < 300; i++, seq++) {
      const b = rng.int(50);
      tail.add(b, seq, 1, 64);
      all.push([b, seq]);
    }
    for (let q = 0; q < 200; q++) {
      const lo = rng.int(seq + 2) - 1;
      const hi = lo + rng.int(seq - lo + 2);
      const got: number[][] = [];
      older!.versionsInSeqRange(lo, hi, (b, s) => got.push([b, s]));
      tail.versionsInSeqRange(lo, hi, (b, s) => got.push([b, s]));
      const key = (x: number[]) => `${x[0]}/${x[1]}`;
      assert.deepEqual(got.map(key).sort(), all.filter(([, s]) => s > lo && s <= hi).map(key).sort(), `range (${lo}, ${hi}]`);
    }
    for (let b = 0; b < 50; b++) {
      const got: number[] = [];
      older!.versionsOfBlock(b, (_b, s) => got.push(s));
      tail.versionsOfBlock(b, (_b, s) => got.push(s));
      assert.deepEqual(got, all.filter(([x]) => x === b).map(([, s]) => s), `block ${b} oldest first`);
    }
  });
  assert.deepEqual(extentsOf([1, 1, 2, 3, 5, 7, 7, 8]), [{ firstBlock: 1, blockCount: 3 }, { firstBlock: 5, blockCount: 1 }, { firstBlock: 7, blockCount: 2 }]);
});

for (const seed of CORPUS) {
  test(`index diff and block history match the exported images and a plain model (seed ${seed})`, async () => {
    const rng = new Rng(seed);
    console.log(`seed ${seed}`);
    await withSeed(rng, async () => {
      const c = { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 };
      let { dir, vol } = await freshVolume(c);
      const model = new VolumeModel(SIZE);
      model.snapshot(0);
      const versions: ModelVersion[][] = Array.from({ length: BLOCKS }, () => []);
      const unsynced: ModelVersion[] = [];
      const points: number[] = [0];
      const OPS = 360;
      for (let i = 0; i < OPS; i++) {
        const before = vol.lastSeq;
        const r = rng.next();
        let off: number;
        let len: number;
        if (r < 0.6) {
          // Writes, often overwriting a hot spot, sometimes all-zero data (stored as zero versions).
          off = rng.bool(0.5) ? rng.int(8 * BS) : rng.int(SIZE - 1);
          len = Math.min(SIZE - off, 1 + rng.int(12 * 1024));
          const data = rng.bool(0.1) ? Buffer.alloc(len) : rng.bytes(len);
          await vol.write(off, data);
          model.write(off, data);
        } else {
          off = rng.int(BLOCKS - 1) * BS + (rng.bool(0.3) ? rng.int(BS) : 0);
          len = Math.min(SIZE - off, 1 + rng.int(6 * BS));
          await vol.writeZeroes(off, len, r > 0.8);
          model.zero(off, len);
        }
        for (let b = Math.floor(off / BS); b < Math.ceil((off + len) / BS); b++) {
          const bytes = model.live.subarray(b * BS, (b + 1) * BS);
          const v: ModelVersion = { seqAfter: before, seqTo: vol.lastSeq, kind: bytes.every((x) => x === 0) ? 'zero|trim' : 'write', sha: sha16(bytes) };
          versions[b].push(v);
          unsynced.push(v);
        }
        if (i % 12 === 11) {
          const e = await vol.sync({ label: `e${i}` });
          for (const v of unsynced.splice(0)) v.eventSeq = e.seq;
          model.snapshot(e.seq);
          points.push(e.seq);
        } else if (rng.bool(0.05)) {
          model.snapshot(vol.lastSeq);
          points.push(vol.lastSeq);
        }
        if (i === Math.floor(OPS / 2)) {
          // On-disk runs (merged, straddling the points) answer from here on.
          await vol.close();
          vol = await Volume.open(dir);
          assert.ok(whiteBox(vol).index.runCount > 0, 'reopened volume has sorted runs');
        }
      }
      const status = await vol.status();
      assert.ok(status.log.copyForwardBytes > 0 || status.archive.segments! > 0, 'history went through turnover');

      // Every pair of a sample of points: the diff lists exactly the blocks the model wrote in
      // between, which covers every block whose bytes differ between the two exported images.
      const images = new Map<number, Buffer>();
      const image = async (seq: number) => {
        if (!images.has(seq)) {
          const img = await vol.read(0, SIZE, vol.resolvePoint(`seq:${seq}`));
          assert.ok(img.equals(model.atSeq.get(seq)!), `exported image at seq ${seq} matches the model`);
          images.set(seq, img);
        }
        return images.get(seq)!;
      };
      for (let q = 0; q < 40; q++) {
        const [a, b] = [points[rng.int(points.length)], points[rng.int(points.length)]];
        const extents = indexDiff(whiteBox(vol).index, a, b);
        const listed = blocksOf(extents);
        const [ia, ib] = [await image(a), await image(b)];
        for (let blk = 0; blk < BLOCKS; blk++) {
          if (!ia.subarray(blk * BS, (blk + 1) * BS).equals(ib.subarray(blk * BS, (blk + 1) * BS))) assert.ok(listed.includes(blk), `block ${blk} differs between seq ${a} and ${b} but is not in the diff`);
        }
        assert.deepEqual(listed, modelDiff(versions, Math.min(a, b), Math.max(a, b)), `diff seq ${a}..${b} is exactly the blocks versioned in between`);
        for (let k = 1; k < extents.length; k++) assert.ok(extents[k].firstBlock > extents[k - 1].firstBlock + extents[k - 1].blockCount, 'extents are merged and ascending');
      }

      // Block history: every version, oldest first, with its kind and event.
      const hist = blockHistory(whiteBox(vol).index, vol.events, 0, BLOCKS);
      for (let blk = 0; blk < BLOCKS; blk++) {
        const got = hist.filter((h) => h.block === blk);
        const want = versions[blk];
        assert.equal(got.length, want.length, `block ${blk}: version count`);
        got.forEach((h, k) => {
          assert.ok(h.seq > want[k].seqAfter && h.seq <= want[k].seqTo, `block ${blk} version ${k}: seq ${h.seq} in (${want[k].seqAfter}, ${want[k].seqTo}]`);
          assert.equal(h.kind, want[k].kind, `block ${blk} version ${k}: kind`);
          assert.equal(h.event ? vol.events.find((e) => e.id === h.event!.id)!.seq : undefined, want[k].eventSeq, `block ${blk} version ${k}: event`);
          assert.ok(h.timeMs >= vol.createdMs - 1000, `block ${blk} version ${k}: has a time`);
          if (k) assert.ok(h.timeMs >= got[k - 1].timeMs, 'times ascend with seq');
        });
      }
      await vol.close();

      // The CLI, on the stopped volume: diff --out and history --hash.
      const [a, b] = [points[1], points[points.length - 2]];
      const out = path.join(path.dirname(dir), 'changed.img');
      const d = cliJson<{ blocks: number; bytes: number; changes: Array<{ firstBlock: number; blockCount: number }> }>(['diff', dir, `seq:${a}`, `seq:${b}`, '--out', out]);
      assert.deepEqual(blocksOf(d.changes), modelDiff(versions, a, b), 'CLI diff lists the model blocks');
      const file = fs.readFileSync(out);
      assert.equal(file.length, SIZE, '--out file has the volume size');
      const want = model.atSeq.get(b)!;
      const changed = new Set(blocksOf(d.changes));
      for (let blk = 0; blk < BLOCKS; blk++) {
        const got = file.subarray(blk * BS, (blk + 1) * BS);
        if (changed.has(blk)) assert.ok(got.equals(want.subarray(blk * BS, (blk + 1) * BS)), `--out block ${blk} holds <to>'s bytes`);
        else assert.ok(got.every((x) => x === 0), `--out block ${blk} (unchanged) reads as zeros`);
      }
      const allocated = fs.statSync(out).blocks * 512;
      assert.ok(allocated <= d.bytes, `--out allocates ${allocated} bytes, no more than the ${d.bytes} changed: the rest are holes`);

      const h = cliJson<{ versions: Array<{ block: number; seq: number; kind: string; sha256: string }> }>(['history', dir, '--offset', String(2 * BS + 100), '--length', String(3 * BS), '--hash']);
      for (let blk = 2; blk <= 5; blk++) {
        const got = h.versions.filter((v) => v.block === blk);
        assert.deepEqual(got.map((v) => [v.kind, v.sha256]), versions[blk].map((v) => [v.kind, v.sha]), `CLI history of block ${blk}: kinds and hashes`);
      }
      assert.deepEqual(h.versions.map((v) => v.seq), [...h.versions.map((v) => v.seq)].sort((x, y) => x - y), 'oldest first');
    });
  });
}

test('diff and history refuse a volume held by another process (LOCKED), and bad points (exit 2)', async () => {
  const { dir, vol } = await freshVolume({ sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 });
  await vol.write(0, Buffer.alloc(BS, 1));
  await vol.sync({ label: 'one' });
  try {
    for (const args of [['diff', dir, 'one', 'live'], ['history', dir, '--offset', '0']]) {
      const r = cli([...args, '--json']);
      assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
      assert.equal(JSON.parse(r.stdout).error.code, 'LOCKED', args[0]);
    }
  } finally {
    await vol.close();
  }
  const r = cli(['diff', dir, 'nosuch', 'live']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(cli(['diff', dir, 'seq:0', 'one']).stdout, /1 extents, 1 blocks/);
  assert.match(cli(['history', dir, '--offset', '100']).stdout, /1 versions of blocks 0\.\.0[\s\S]*write/);
});
