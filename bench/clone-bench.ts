import * as path from 'node:path';
import { clonesOf } from '../src/clone/clone-service';
import { CloneOverlay } from '../src/clone/clone-overlay';
import { rollback } from '../src/rollback/rollback';
import { Volume } from '../src/volume/volume';
import { BenchResult, pairList, paired, patternChunk, scratch, settle, uniform } from './lib';

const MiB = 2 ** 20;

/**
 * `--only clone` (issue 16): clone creation at 10^5 and 10^7 versions (history built cheaply from
 * whole-volume trims, one record per many versions); on a 1 GiB volume: sequential read of a
 * fresh clone against its event's image, writes into a clone against writes into live (both in
 * back-to-back pairs, order alternating), and a rollback of a point 1 % different from live:
 * the bytes it wrote against the bytes that differ, and its time.
 */
export async function benchClone(scales: number[] = [1e5, 1e7]): Promise<BenchResult> {
  const lines: string[] = [];
  const figures: Record<string, unknown> = {};
  const creation = await cloneCreation(scales);
  for (const [k, v] of Object.entries(creation)) lines.push(`clone creation at ${k} versions: median ${v.medianMs.toFixed(2)} ms, max ${v.maxMs.toFixed(2)} ms (${v.samples} clones; target <= 50 ms)`);
  figures.cloneCreateMs = Object.fromEntries(Object.entries(creation).map(([k, v]) => [k, v.medianMs]));
  figures.cloneCreateMaxMs = Object.fromEntries(Object.entries(creation).map(([k, v]) => [k, v.maxMs]));

  const dir = path.join(scratch('clone'), 'vol');
  const size = 1024 * MiB;
  const bs = 4096;
  await Volume.create(dir, { sizeBytes: size, blockSizeBytes: bs });
  const vol = await Volume.open(dir);
  try {
    const fill = patternChunk(4 * MiB, 1);
    for (let at = 0; at < size; at += fill.length) await vol.write(at, fill);
    await vol.sync({ label: 'full' });
    const point = vol.resolvePoint('full');
    const clones = clonesOf(vol);

    // Sequential read: a fresh clone (every block falls through) against its event's image.
    const readBytes = 256 * MiB;
    let n = 0;
    const read = await paired(7,
      () => seqRead(readBytes, (buf, off) => vol.readInto(buf, off, buf.length, point)),
      async () => {
        const c = await clones.create(`read${n++}`, 'full');
        return seqRead(readBytes, (buf, off) => settleRead(clones.overlay(c.name), buf, off));
      });
    lines.push(`clone sequential read (fresh clone of a 1 GiB volume's event, ${readBytes / MiB} MiB in 1 MiB reads): ${read.ours.toFixed(0)} MB/s vs the event image ${read.baseline.toFixed(0)} MB/s: ${read.ratio.toFixed(2)}x (pairs: ${pairList(read)}; target >= 0.9x)`);
    Object.assign(figures, { cloneReadMBps: read.ours, cloneEventReadMBps: read.baseline, cloneReadRatio: read.ratio });

    // Rollback of a point 1 % different from live: runs of 4 blocks rewritten at random.
    const rand = uniform(16);
    const blocks = size / bs;
    const touched = new Uint8Array(blocks);
    let differ = 0;
    for (let i = 0; differ < blocks / 100; i++) {
      const b = rand(blocks - 4);
      await vol.write(b * bs, patternChunk(4 * bs, 1000 + i));
      for (let k = b; k < b + 4; k++) if (!touched[k]) (touched[k] = 1), differ++;
    }
    await vol.flush();
    settle();
    const before = (await vol.status()).log.bytesWritten;
    const r = await rollback(vol, { to: 'full' });
    const wrote = (await vol.status()).log.bytesWritten - before;
    const undo = await rollback(vol, { to: String(r.before.id) });
    const differBytes = differ * bs;
    lines.push(`rollback of a 1 GiB volume to a point 1 % different (${differBytes / MiB} MiB in ${differ} blocks): wrote ${(wrote / MiB).toFixed(2)} MiB = ${(wrote / differBytes).toFixed(3)}x the bytes that differ (target <= 1.05x), ${r.comparedBlocks} blocks compared, ${(r.elapsedMs / 1000).toFixed(2)} s; its undo ${(undo.elapsedMs / 1000).toFixed(2)} s`);
    Object.assign(figures, { rollbackWrittenRatio: wrote / differBytes, rollbackMs: r.elapsedMs, rollbackUndoMs: undo.elapsedMs, rollbackDifferBytes: differBytes });

    // Writes into a clone against writes into live: 64 MiB in 1 MiB writes, then made durable.
    const writeBytes = 64 * MiB;
    const data = patternChunk(writeBytes, 7);
    let liveAt = 0;
    let w = 0;
    const liveWrites = () =>
      timedMBps(writeBytes, async () => {
        const at = (liveAt = (liveAt + writeBytes) % size);
        for (let off = 0; off < writeBytes; off += MiB) await vol.write(at + off, data.subarray(off, off + MiB));
        await vol.flush();
      });
    const cloneWrites = async (o: CloneOverlay, from: Buffer) => {
      for (let off = 0; off < writeBytes; off += MiB) {
        const p = o.write(off, from.subarray(off, off + MiB));
        if (p) await p;
      }
      await o.sync();
    };
    const writes = await paired(3, liveWrites, async () => {
      const o = clones.overlay((await clones.create(`write${w++}`, 'full')).name);
      return timedMBps(writeBytes, () => cloneWrites(o, data));
    });
    lines.push(`clone writes (64 MiB in 1 MiB writes, then durable): ${writes.ours.toFixed(0)} MB/s vs live ${writes.baseline.toFixed(0)} MB/s: ${writes.ratio.toFixed(2)}x (pairs: ${pairList(writes)})`);
    Object.assign(figures, { cloneWriteMBps: writes.ours, cloneLiveWriteMBps: writes.baseline, cloneWriteRatio: writes.ratio });

    // The same over blocks the clone already holds, synced (in-place overwrites: each region's
    // mark is made durable once before its first overwrite, DESIGN rule 12a) against live.
    const again = patternChunk(writeBytes, 8);
    const overwrites = await paired(3, liveWrites, async () => {
      const o = clones.overlay((await clones.create(`write${w++}`, 'full')).name);
      await cloneWrites(o, data);
      return timedMBps(writeBytes, () => cloneWrites(o, again));
    });
    lines.push(`clone overwrites (64 MiB in 1 MiB writes over synced clone blocks, then durable): ${overwrites.ours.toFixed(0)} MB/s vs live ${overwrites.baseline.toFixed(0)} MB/s: ${overwrites.ratio.toFixed(2)}x (pairs: ${pairList(overwrites)})`);
    Object.assign(figures, { cloneOverwriteMBps: overwrites.ours, cloneOverwriteLiveMBps: overwrites.baseline, cloneOverwriteRatio: overwrites.ratio });
    await clones.closeAll();
  } finally {
    await vol.close();
  }
  return { lines, figures };
}

async function settleRead(o: CloneOverlay, buf: Buffer, off: number): Promise<void> {
  const p = o.readInto(buf, off, buf.length);
  if (p) await p;
}

async function seqRead(bytes: number, read: (buf: Buffer, offset: number) => Promise<void>): Promise<number> {
  const buf = Buffer.allocUnsafe(MiB);
  return timedMBps(bytes, async () => {
    for (let off = 0; off < bytes; off += MiB) await read(buf, off);
  });
}

async function timedMBps(bytes: number, body: () => Promise<void>): Promise<number> {
  const t = performance.now();
  await body();
  return bytes / 1e6 / ((performance.now() - t) / 1000);
}

/**
 * Clone creation against one volume whose history grows to each scale: 64 MiB of 512-byte
 * blocks, trimmed whole (131072 versions a round), an event at each scale, then clones of it.
 */
async function cloneCreation(scales: number[]): Promise<Record<string, { medianMs: number; maxMs: number; samples: number }>> {
  const dir = path.join(scratch('clone-scale'), 'vol');
  const size = 64 * MiB;
  const bs = 512;
  await Volume.create(dir, { sizeBytes: size, blockSizeBytes: bs, segmentSizeBytes: 8 * MiB });
  const out: Record<string, { medianMs: number; maxMs: number; samples: number }> = {};
  let versions = 0;
  const small = patternChunk(64 * bs, 3);
  for (const scale of scales) {
    const vol = await Volume.open(dir);
    try {
      while (versions < scale) {
        const round = Math.min(size / bs, scale - versions);
        await vol.write(((versions / 64) % (size / bs / 64 - 1)) * 64 * bs, small); // some data versions too
        await vol.writeZeroes(0, Math.max(1, round - 64) * bs, true);
        versions += Math.max(1, round - 64) + 64;
      }
      const label = `scale-${scale}`;
      await vol.sync({ label });
      settle(); // the build's dirty pages must not land on the clones' fsyncs
      const clones = clonesOf(vol);
      const times: number[] = [];
      for (let i = 0; i < 9; i++) {
        const t = performance.now();
        await clones.create(`c${i}`, label);
        times.push(performance.now() - t);
      }
      for (let i = 0; i < 9; i++) await clones.delete(`c${i}`);
      times.sort((a, b) => a - b);
      out[scale.toExponential().replace('+', '')] = { medianMs: times[4], maxMs: times[8], samples: times.length };
    } finally {
      await vol.close();
    }
  }
  return out;
}
