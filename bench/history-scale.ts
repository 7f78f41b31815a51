import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Volume } from '../src/volume/volume';
import { BenchResult, patternChunk, scratch, uniform } from './lib';

const DATA_BLOCKS = 64;
const ZERO_BLOCKS = 576;

/**
 * Builds one volume's history up to each scale in turn (512-byte blocks; per round a 64-block
 * data write and a 576-block discard at random places, an event every 100 rounds), and probes it
 * in a fresh process at each scale: floor lookups, past-image first reads, index size and RSS.
 */
export async function benchHistoryScale(scales: number[]): Promise<BenchResult> {
  const dir = path.join(scratch('history'), 'vol');
  await Volume.create(dir, { sizeBytes: 32 * 2 ** 20, blockSizeBytes: 512, segmentSizeBytes: 8 * 2 ** 20 });
  const blocks = (32 * 2 ** 20) / 512;
  const data = patternChunk(4 * 2 ** 20, 11);
  const rand = uniform(7);
  let versions = 0;
  let round = 0;
  const lines: string[] = [];
  const firstReadP99Ms: Record<string, number> = {};
  const lookupP99Us: Record<string, number> = {};
  const rssMiB: Record<string, number> = {};
  let indexBytesPerVersion = 0;
  for (const scale of scales) {
    const vol = await Volume.open(dir);
    while (versions < scale) {
      const off = rand(blocks - DATA_BLOCKS);
      const src = (round % 1000) * DATA_BLOCKS * 512;
      await vol.write(off * 512, data.subarray(src, src + DATA_BLOCKS * 512));
      await vol.writeZeroes(rand(blocks - ZERO_BLOCKS) * 512, ZERO_BLOCKS * 512, true);
      versions += DATA_BLOCKS + ZERO_BLOCKS;
      if (++round % 100 === 0) await vol.sync({ label: `r${round}` });
    }
    await vol.sync({ label: `scale-${scale}` });
    await vol.close();
    const probe = JSON.parse(execFileSync(process.execPath, [path.join(__dirname, 'history-probe.js'), dir], { encoding: 'utf8', maxBuffer: 1 << 20 })) as Record<string, number>;
    const indexFiles = fs.readdirSync(path.join(dir, 'index')).filter((f) => f.startsWith('run-'));
    const indexBytes = indexFiles.reduce((n, f) => n + fs.statSync(path.join(dir, 'index', f)).size, 0);
    const key = scale.toExponential().replace('+', '');
    firstReadP99Ms[key] = probe.firstReadP99Ms;
    lookupP99Us[key] = probe.lookupP99Us;
    rssMiB[key] = probe.rssMiB;
    indexBytesPerVersion = indexBytes / probe.versions;
    lines.push(`history ${key} versions: floor lookup p50 ${probe.lookupP50Us.toFixed(2)} us, p99 ${probe.lookupP99Us.toFixed(2)} us; past-image first read p50 ${probe.firstReadP50Ms.toFixed(3)} ms, p99 ${probe.firstReadP99Ms.toFixed(3)} ms (${probe.pageCacheDropped ? 'page cache dropped' : 'page cache NOT dropped'}); open ${probe.openMs.toFixed(0)} ms; index ${(indexBytes / probe.versions).toFixed(2)} B/version; RSS ${probe.rssMiB.toFixed(0)} MiB`);
  }
  const top = scales[scales.length - 1].toExponential().replace('+', '');
  return {
    lines,
    figures: { firstReadP99Ms, lookupP99Us, indexBytesPerVersion, rssMiBAt1e7: rssMiB['1e7'] ?? null, rssMiB, historyTopScale: top },
  };
}
