import * as path from 'node:path';
import { Volume } from '../src/volume/volume';
import { BenchResult, paired, patternChunk, rawAppend, scratch, seconds, settle, uniform } from './lib';

const MiB = 1024 * 1024;

async function engineIngest(dir: string, sizeBytes: number, writes: Array<{ offset: number; data: Buffer }>, syncEveryBytes: number): Promise<number> {
  await Volume.create(dir, { sizeBytes });
  const vol = await Volume.open(dir);
  const t = process.hrtime.bigint();
  let since = 0;
  let total = 0;
  for (const w of writes) {
    await vol.write(w.offset, w.data);
    since += w.data.length;
    total += w.data.length;
    if (since >= syncEveryBytes) {
      await vol.sync({ label: 'bench' });
      since = 0;
    }
  }
  await vol.sync({ label: 'end' });
  const s = seconds(t);
  await vol.close();
  return total / s;
}

/**
 * Ingest vs raw append+fdatasync of the same bytes, side by side: sequential 1 MiB writes with
 * a sync every 256 MiB, and random 4 KiB writes. Pairs run back to back three times; the median
 * per-pair ratio is reported, so a noisy neighbour hurts both sides alike.
 */
export async function benchIngest(totalBytes = 1024 * MiB): Promise<BenchResult> {
  const root = scratch('ingest');
  const seqWrites = Array.from({ length: totalBytes / MiB }, (_, i) => ({ offset: i * MiB, data: patternChunk(MiB, i + 1) }));
  const randCount = (128 * MiB) / 4096;
  const pool = patternChunk(4 * MiB, 7);
  const rand = uniform(12345);
  const randWrites = Array.from({ length: randCount }, (_, i) => ({ offset: rand(totalBytes / 4096) * 4096, data: pool.subarray((i % 1024) * 4096, (i % 1024) * 4096 + 4096) }));
  let n = 0;
  // Each side starts with no dirty pages, so none pays for the writeback of the one before.
  const seq = await paired(3, () => (settle(), rawAppend(path.join(root, `raw-seq-${n}`), seqWrites.map((w) => w.data), 256 * MiB)), () => (settle(), engineIngest(path.join(root, `vol-seq-${n++}`), totalBytes, seqWrites, 256 * MiB)));
  const rnd = await paired(3, () => (settle(), rawAppend(path.join(root, `raw-rand-${n}`), randWrites.map((w) => w.data), 256 * MiB)), () => (settle(), engineIngest(path.join(root, `vol-rand-${n++}`), totalBytes, randWrites, 256 * MiB)));
  const mbs = (x: number) => `${(x / 1e6).toFixed(0)} MB/s`;
  const ingestSeqRatio = seq.ratio;
  const ingestRand4kRatio = rnd.ratio;
  const [bestEngSeq, bestRawSeq, bestEngRand, bestRawRand] = [seq.ours, seq.baseline, rnd.ours, rnd.baseline];
  return {
    lines: [
      `ingest, sequential 1 MiB writes, sync every 256 MiB: engine ${mbs(bestEngSeq)} vs raw append+fdatasync ${mbs(bestRawSeq)}  ratio ${ingestSeqRatio.toFixed(3)} (median of ${seq.ratios.map((r) => r.toFixed(2)).join(', ')}; target >= 0.9)`,
      `ingest, random 4 KiB writes:                        engine ${mbs(bestEngRand)} vs raw append+fdatasync ${mbs(bestRawRand)}  ratio ${ingestRand4kRatio.toFixed(3)} (median of ${rnd.ratios.map((r) => r.toFixed(2)).join(', ')})`,
    ],
    figures: { ingestSeqRatio, ingestRand4kRatio, ingestSeqMBps: bestEngSeq / 1e6, rawSeqMBps: bestRawSeq / 1e6, ingestRand4kMBps: bestEngRand / 1e6, rawRand4kMBps: bestRawRand / 1e6 },
  };
}

/**
 * Copy-forward write amplification under uniform random 4 KiB overwrites of a full volume, with
 * the default over-provisioning: (user bytes + copied bytes) / user bytes over the overwrite phase.
 */
export async function benchWriteAmp(volumeBytes = 256 * MiB, overwriteFactor = 3): Promise<BenchResult> {
  const dir = path.join(scratch('wa'), 'vol');
  await Volume.create(dir, { sizeBytes: volumeBytes, segmentSizeBytes: 8 * MiB });
  const vol = await Volume.open(dir);
  for (let at = 0; at < volumeBytes; at += MiB) await vol.write(at, patternChunk(MiB, at / MiB + 1));
  const before = (await vol.status()).log;
  const pool = patternChunk(4 * MiB, 3);
  const rand = uniform(99);
  const blocks = volumeBytes / 4096;
  const n = (volumeBytes * overwriteFactor) / 4096;
  for (let i = 0; i < n; i++) {
    await vol.write(rand(blocks) * 4096, pool.subarray((i % 1024) * 4096, (i % 1024) * 4096 + 4096));
  }
  const after = (await vol.status());
  await vol.close();
  const user = after.log.bytesWritten - before.bytesWritten;
  const copied = after.log.copyForwardBytes - before.copyForwardBytes;
  const copyForwardWriteAmp = (user + copied) / user;
  return {
    lines: [`copy-forward write amplification, uniform random 4 KiB overwrites (${overwriteFactor}x a full ${volumeBytes / MiB} MiB volume, K=${after.volume.workingSetSegments}): ${copyForwardWriteAmp.toFixed(3)} (target <= 1.5)`],
    figures: { copyForwardWriteAmp },
  };
}
