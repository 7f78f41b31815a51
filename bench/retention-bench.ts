import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { controlCall } from '../src/control/control-client';
import { dd, startUntil, stop } from './fuse-bench';
import * as path from 'node:path';
import { DEFAULTS } from '../src/options';
import { forget } from '../src/retention/forget';
import { MIN_OVER_PROVISION_RATIO, blocksPerSegment } from '../src/volume/sizing';
import { PruneReport } from '../src/volume/prune';
import { sealNow } from '../src/volume/turnover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { BenchResult, patternChunk, scratch, settle, uniform } from './lib';

/**
 * `--only retention` (issue 15). (a) Prune's time against the history's length, the same bytes
 * to free: one volume per scale (8 MiB, 512-byte blocks, 256 KiB segments, a working set of 44,
 * archived to a local directory) whose lower half holds a history of N versions (per round a 64-block write and a
 * 4,096-block discard at random places, an event every 100 rounds), thinned and pruned once
 * (`forget --keep-last 1`, the first prune: a walk of the whole index). Then, per round and per
 * scale, back to back and alternating which goes first: 64 extents of 16 KiB in the upper half
 * written 14 times over (14 MiB, enough to push the first passes out of the working set), an
 * event, sealed and archived, `forget --keep-last 1`, and the timed `prune`: it frees the same
 * passes at every scale (reported per round).
 * (b) `--peers`: the issue's peers workload at full size (1 GiB, 30 versions each changing 1 %
 * in 64 scattered extents, `forget --keep-last 3`, `prune`): primary + archive bytes, each inode
 * once, against the image + those 3 versions' changed bytes + the working set's fixed size.
 * `--peers-passes N`: after the 30 versions, N whole-image rewrites with no event (live
 * only), so that the versions' segments leave the working set and prune has real work.
 */
const MiB = 2 ** 20;
const CLI = path.resolve(__dirname, '../src/cli/main.js');
const BS = 512;
const SIZE = 8 * MiB;
const SEGMENT_BYTES = 256 * 1024;
/** The smallest working set this geometry takes (43), and one more: churn leaves it soon. */
const WORKING_SET = 44;
/** Passes over the extents per round: enough to push the first ones out of the working set (11 MiB). */
const PASSES = 14;
const HALF_BLOCKS = SIZE / BS / 2;
const DATA_BLOCKS = 64;
const ZERO_BLOCKS = 4096;
const EXTENTS = 64;
const EXTENT_BYTES = 16 * 1024;

interface Scaled {
  scale: number;
  vol: Volume;
  versions: number;
  extents: number[];
  salt: number;
  firstPruneMs: number;
}

export async function benchRetention(o: { scales: number[]; rounds: number; peers: boolean; fuse: boolean; peersPasses?: number }): Promise<BenchResult> {
  const lines: string[] = [];
  const figures: Record<string, unknown> = {};
  if (o.scales.length) Object.assign(figures, await pruneAgainstHistory(lines, o.scales, o.rounds));
  if (o.fuse) Object.assign(figures, await fuseDuringPrune(lines, o.rounds));
  if (o.peers) Object.assign(figures, await peers(lines, o.peersPasses ?? 0));
  return { lines, figures };
}

/** (a) Per round and per scale, back to back (the order alternating): churn, forget, a timed prune. */
async function pruneAgainstHistory(lines: string[], scales: number[], rounds: number): Promise<Record<string, unknown>> {
  const root = scratch('retention');
  const vols: Scaled[] = [];
  try {
    for (const scale of scales) {
      const t = Date.now();
      vols.push(await buildHistory(path.join(root, `s${scale}`), scale));
      const v = vols[vols.length - 1];
      lines.push(`retention: history of ${v.versions.toExponential(2)} versions built in ${((Date.now() - t) / 1000).toFixed(0)} s; first prune (whole index) ${v.firstPruneMs.toFixed(0)} ms`);
    }
    const times = new Map<number, number[]>(scales.map((s) => [s, []]));
    const ratios: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? vols : [...vols].reverse();
      const got = new Map<number, number>();
      for (const v of order) {
        const { ms, rep } = await churnAndPrune(v);
        got.set(v.scale, ms);
        times.get(v.scale)!.push(ms);
        lines.push(`retention: round ${r + 1}, ${v.scale.toExponential(0)} versions: prune ${ms.toFixed(0)} ms (${rep.incremental ? 'incremental' : 'WHOLE INDEX'}; read ${rep.objectsRead.length} objects, deleted ${rep.deleted.length}, rewrote ${rep.rewritten.length}, freed ${(rep.freedBytes / MiB).toFixed(2)} MiB, ${rep.versionsDropped} versions dropped); load ${loadAvg()}`);
      }
      ratios.push(got.get(scales[scales.length - 1])! / got.get(scales[0])!);
    }
    const pruneMs: Record<string, { median: number; min: number; max: number }> = {};
    for (const [s, a] of times) pruneMs[s.toExponential(0).replace('+', '')] = { median: median(a), min: Math.min(...a), max: Math.max(...a) };
    lines.push(`retention: prune time ${scales[scales.length - 1].toExponential(0)} / ${scales[0].toExponential(0)} versions, same bytes to free: median ${median(ratios).toFixed(2)}x (pairs ${ratios.map((x) => x.toFixed(2)).join(', ')}; target <= 2)`);
    return { retentionPruneMs: pruneMs, retentionPruneRatio: { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios) } };
  } finally {
    for (const v of vols) await v.vol.close();
  }
}

function median(a: number[]): number {
  return [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
}

async function buildHistory(dir: string, scale: number): Promise<Scaled> {
  await Volume.create(dir, { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: SEGMENT_BYTES, workingSetSegments: WORKING_SET, archive: `${dir}-archive` });
  const vol = await Volume.open(dir);
  const rand = uniform(7);
  const data = patternChunk(4 * MiB, 11);
  let versions = 0;
  let round = 0;
  while (versions < scale) {
    const src = (round % 1000) * DATA_BLOCKS * BS;
    await vol.write(rand(HALF_BLOCKS - DATA_BLOCKS) * BS, data.subarray(src, src + DATA_BLOCKS * BS));
    await vol.writeZeroes(rand(HALF_BLOCKS - ZERO_BLOCKS) * BS, ZERO_BLOCKS * BS, true);
    versions += DATA_BLOCKS + ZERO_BLOCKS;
    if (++round % 100 === 0) await vol.sync({ label: `r${round}` });
  }
  // The extents the rounds rewrite, written once: from here on every round frees the same bytes.
  const r2 = uniform(23);
  const extents = Array.from({ length: EXTENTS }, () => (HALF_BLOCKS + r2(HALF_BLOCKS - EXTENT_BYTES / BS)) * BS);
  for (const [i, off] of extents.entries()) await vol.write(off, patternChunk(EXTENT_BYTES, 1e5 + i));
  await vol.sync({ label: 'history' });
  forget(vol, { keepLast: 1 }, { countPrunable: false });
  await archiveAll(vol);
  const t = process.hrtime.bigint();
  await vol.prune();
  const firstPruneMs = Number(process.hrtime.bigint() - t) / 1e6;
  const v: Scaled = { scale, vol, versions: whiteBox(vol).index.versionCount, extents, salt: 2e5, firstPruneMs };
  // One untimed round: the history's own segments leave primary and are pruned (at 10^5 they were
  // all still in it), so every timed round frees the same passes.
  await churnAndPrune(v);
  return v;
}

async function churnAndPrune(v: Scaled): Promise<{ ms: number; rep: PruneReport }> {
  for (let pass = 0; pass < PASSES; pass++) {
    for (const off of v.extents) await v.vol.write(off, patternChunk(EXTENT_BYTES, v.salt++));
  }
  await v.vol.sync({ label: `churn-${v.salt}` });
  forget(v.vol, { keepLast: 1 }, { countPrunable: false });
  await archiveAll(v.vol);
  settle();
  const t = process.hrtime.bigint();
  const rep = await v.vol.prune();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, rep };
}

/** Seals the current segment and waits until it (and all before it) is archived and out of primary. */
async function archiveAll(vol: Volume): Promise<void> {
  const core = whiteBox(vol);
  const current = core.segments.current.id;
  await sealNow(core);
  const err = await core.archiver.settled(current);
  if (err) throw err;
}

function loadAvg(): string {
  const r = spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' });
  return r.stdout.split(' ').slice(0, 3).join(' ');
}

/**
 * (b) The peers workload at full size: a 1 GiB random image (4 KiB blocks, 8 MiB segments, the
 * smallest working set the geometry takes), 30 versions each rewriting 1 % in 64 scattered
 * extents, an event after each; `forget --keep-last 3`, everything sealed and archived, `prune`.
 * Primary + archive (the archive in the volume directory, hard-linked) by `du`, each inode once.
 */
async function peers(lines: string[], passes: number): Promise<Record<string, unknown>> {
  const size = 1024 * MiB;
  const seg = 8 * MiB;
  const bs = 4096;
  const k = Math.ceil(((size / bs) * MIN_OVER_PROVISION_RATIO) / blocksPerSegment(seg, bs)) + DEFAULTS.workingSetSlackSegments;
  const dir = path.join(scratch('retention-peers'), 'vol');
  await Volume.create(dir, { sizeBytes: size, blockSizeBytes: bs, segmentSizeBytes: seg, workingSetSegments: k });
  const vol = await Volume.open(dir);
  const extentBytes = Math.round((size * 0.01) / 64 / bs) * bs;
  const rnd = uniform(11);
  let changed3 = 0;
  try {
    for (let at = 0; at < size; at += 4 * MiB) await vol.write(at, patternChunk(4 * MiB, at / (4 * MiB) + 1));
    await vol.sync({ label: 'v0' });
    for (let v = 1; v <= 30; v++) {
      // The bytes the last 3 versions changed (overlaps within a version counted once).
      const blocks = new Set<number>();
      for (let i = 0; i < 64; i++) {
        const off = rnd((size - extentBytes) / bs) * bs;
        await vol.write(off, patternChunk(extentBytes, 1e6 + v * 1e4 + i));
        for (let b = off / bs; b < (off + extentBytes) / bs; b++) blocks.add(b);
      }
      if (v > 27) changed3 += blocks.size * bs;
      await vol.sync({ label: `v${v}` });
    }
    // Later writes to live (no event): they push the versions out of the working set.
    for (let p = 0; p < passes; p++) {
      for (let at = 0; at < size; at += 4 * MiB) await vol.write(at, patternChunk(4 * MiB, 1e8 + p * 1e4 + at / (4 * MiB)));
    }
    if (passes) await vol.flush();
    settle();
    const before = duBytes(dir);
    forget(vol, { keepLast: 3 }, { countPrunable: false });
    await archiveAll(vol);
    const t = process.hrtime.bigint();
    const rep = await vol.prune();
    const pruneS = Number(process.hrtime.bigint() - t) / 1e9;
    await vol.close();
    settle();
    const after = duBytes(dir);
    const [primaryAfter] = duParts(dir, ['segments', 'archive']);
    const target = size + changed3 + k * seg;
    const ratio = after / target;
    const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
    lines.push(`retention peers: 1 GiB, 30 versions x 1 % in 64 extents${passes ? `, then ${passes} whole-image rewrites of live` : ''}, keep-last 3: primary + archive ${mib(before)} before prune, ${mib(after)} after; target image + 3 versions' changes + working set (${k} x 8 MiB) = ${mib(target)}; ratio ${ratio.toFixed(3)} (target <= 1.1; after prune primary segments ${mib(primaryAfter)}, the rest archive, index and metadata); prune ${pruneS.toFixed(1)} s (read ${rep.objectsRead.length}, deleted ${rep.deleted.length}, rewrote ${rep.rewritten.length}, freed ${mib(rep.freedBytes)}); load ${loadAvg()}`);
    return { retentionPeers: { passes, beforeBytes: before, afterBytes: after, primaryAfterBytes: primaryAfter, targetBytes: target, ratio, pruneS, deleted: rep.deleted.length, rewritten: rep.rewritten.length, freedBytes: rep.freedBytes } };
  } finally {
    await vol.close().catch(() => undefined);
  }
}

/** Disk usage of each of `subdirs` of `dir` in one du run: an inode is counted under the first that holds it. */
function duParts(dir: string, subdirs: string[]): number[] {
  const r = spawnSync('du', ['-s', '-B1', ...subdirs.map((d) => path.join(dir, d))], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`du ${dir}: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => Number(l.split(/\s/)[0]));
}

/** Disk usage in bytes, each inode counted once (hard links too). */
function duBytes(dir: string): number {
  const r = spawnSync('du', ['-s', '-B1', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`du ${dir}: ${r.stderr}`);
  return Number(r.stdout.split(/\s/)[0]);
}

/**
 * (c) `--fuse`: FUSE live writes and past-image reads while the daemon prunes, against the same
 * work with no prune, in pairs (the order alternating). A 64 MiB volume (4 KiB blocks, 1 MiB
 * segments, the smallest working set): before each side, with the daemon stopped, 96 MiB of
 * churn (enough to leave the working set), an event, `forget --keep-last 1`; then `mount`, and
 * on the prune side a prune asked through the control socket; the work (from other processes):
 * dd of 16 MiB into live/volume.img (bs=1M, conv=fsync), then dd of the kept event's image to
 * /dev/null. The no-prune side prunes after its work, untimed, so both start alike.
 */
async function fuseDuringPrune(lines: string[], rounds: number): Promise<Record<string, unknown>> {
  const size = 64 * MiB;
  const seg = 1 * MiB;
  const bs = 4096;
  const k = Math.ceil(((size / bs) * MIN_OVER_PROVISION_RATIO) / blocksPerSegment(seg, bs)) + DEFAULTS.workingSetSlackSegments;
  const root = scratch('retention-fuse');
  const dir = path.join(root, 'vol');
  const mnt = path.join(root, 'mnt');
  fs.mkdirSync(mnt);
  await Volume.create(dir, { sizeBytes: size, blockSizeBytes: bs, segmentSizeBytes: seg, workingSetSegments: k });
  const src = path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : root, `chronovol-bench-retention-${process.pid}`);
  spawnSync('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', 'count=16', 'status=none']);
  const rnd = uniform(31);
  let salt = 1;
  const prepare = async () => {
    const vol = await Volume.open(dir);
    try {
      for (let n = 0; n < 96 * 4; n++) await vol.write(rnd(size / (256 * 1024)) * 256 * 1024, patternChunk(256 * 1024, salt++));
      await vol.sync({ label: `round-${salt}` });
      forget(vol, { keepLast: 1 }, { countPrunable: false });
      await archiveAll(vol);
    } finally {
      await vol.close();
    }
  };
  const work = () => {
    settle();
    const w = dd([`if=${src}`, `of=${path.join(mnt, 'live/volume.img')}`, 'bs=1M', 'count=16', `seek=${rnd(48)}`, 'conv=notrunc,fsync']);
    const ev = fs.readdirSync(path.join(mnt, 'events'));
    const r = dd([`if=${path.join(mnt, 'events', ev[ev.length - 1], 'volume.img')}`, 'of=/dev/null', 'bs=1M', 'count=32']);
    return { w, r };
  };
  const writeRatios: number[] = [];
  const readRatios: number[] = [];
  let overlapped = 0;
  const pruneMs: number[] = [];
  const detail: string[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      const got: Record<string, { w: number; r: number }> = {};
      for (const side of r % 2 === 0 ? ['prune', 'none'] : ['none', 'prune']) {
        await prepare();
        const p = await startUntil(process.execPath, [CLI, 'mount', dir, mnt], 'mounted');
        try {
          const sock = path.join(dir, 'control.sock');
          if (side === 'prune') {
            let done = false;
            const t = Date.now();
            const call = controlCall(sock, { method: 'retention', params: { op: 'prune' } }, undefined, 600_000).finally(() => (done = true));
            await new Promise((res) => setTimeout(res, 50));
            got[side] = work();
            if (!done) overlapped++;
            await call;
            pruneMs.push(Date.now() - t);
          } else {
            got[side] = work();
            await controlCall(sock, { method: 'retention', params: { op: 'prune' } }, undefined, 600_000);
          }
        } finally {
          await stop(p);
        }
      }
      writeRatios.push(got.prune.w / got.none.w);
      readRatios.push(got.prune.r / got.none.r);
      detail.push(`write ${(got.prune.w / 1e6).toFixed(0)}/${(got.none.w / 1e6).toFixed(0)} MB/s, read ${(got.prune.r / 1e6).toFixed(0)}/${(got.none.r / 1e6).toFixed(0)} MB/s`);
    }
  } finally {
    fs.rmSync(src, { force: true });
  }
  const med = median;
  lines.push(`retention fuse: during a background prune vs none (pairs, prune/none): live writes median ${med(writeRatios).toFixed(2)}x (${writeRatios.map((x) => x.toFixed(2)).join(', ')}), past-image reads median ${med(readRatios).toFixed(2)}x (${readRatios.map((x) => x.toFixed(2)).join(', ')}) (targets >= 0.8); prune still running when the work ended in ${overlapped} of ${rounds} rounds; prunes took ${pruneMs.map((x) => (x / 1000).toFixed(1)).join(', ')} s; ${detail.join('; ')}; load ${loadAvg()}`);
  return { retentionFuse: { writeRatio: med(writeRatios), readRatio: med(readRatios), writeRatios, readRatios, overlapped, rounds, pruneMs } };
}
