import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { blockHistory } from '../src/history/block-history';
import { diffOf } from '../src/investigate/queries';
import { timelineOf } from '../src/investigate/timeline-bins';
import { svgToPng, timelineSvg } from '../src/investigate/timeline-chart';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { BenchResult, patternChunk, percentile, scratch, uniform } from './lib';

const BS = 512;
const SIZE = 32 * 2 ** 20;
const DATA_BLOCKS = 64;
const ZERO_BLOCKS = 575;
/** One block rewritten every round: its history is the block-history figure's. */
const HOT_BLOCK = 12345;
const ROUNDS_PER_EVENT = 100;
const CLI = path.resolve(__dirname, '../src/cli/main.js');

const ms = (t: bigint) => Number(process.hrtime.bigint() - t) / 1e6;

/**
 * Issue 17's targets: diff of points 10^6 versions apart and of adjacent events, block history
 * of a block with 10^4 versions (p99), the timeline of 10^7 versions, and bisect over 64 events
 * with e2fsck -fn. Baselines: what a user does without them (compare two exported images; export
 * each probed image whole and check it).
 */
export async function benchInvestigate(totalVersions = 1e7): Promise<BenchResult> {
  const lines: string[] = [];
  const figures: Record<string, unknown> = {};
  const dir = path.join(scratch('investigate'), 'vol');
  await Volume.create(dir, { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 8 * 2 ** 20 });
  const blocks = SIZE / BS;
  const data = patternChunk(4 * 2 ** 20, 17);
  const rand = uniform(17);
  let vol = await Volume.open(dir);
  const t0 = process.hrtime.bigint();
  let versions = 0;
  for (let round = 1; versions < totalVersions; round++) {
    const src = (round % 127) * DATA_BLOCKS * BS; // 128 distinct 32 KiB pieces in the 4 MiB pattern
    await vol.write(rand(blocks - DATA_BLOCKS) * BS, data.subarray(src, src + DATA_BLOCKS * BS));
    await vol.writeZeroes(rand(blocks - ZERO_BLOCKS) * BS, ZERO_BLOCKS * BS, true);
    await vol.write(HOT_BLOCK * BS, data.subarray(src, src + BS));
    versions += DATA_BLOCKS + ZERO_BLOCKS + 1;
    if (round % ROUNDS_PER_EVENT === 0) await vol.sync({ label: `r${round}` });
  }
  await vol.close();
  vol = await Volume.open(dir, { readOnly: true });
  lines.push(`investigate: built ${(await vol.status()).index.versions} versions, ${vol.events.length} events in ${(ms(t0) / 1000).toFixed(0)} s (load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
  const ev = vol.events;
  const perEvent = (DATA_BLOCKS + ZERO_BLOCKS + 1) * ROUNDS_PER_EVENT;

  // Diff 10^6 versions apart, and of adjacent events; against comparing the two images.
  const apart = Math.ceil(1e6 / perEvent);
  const timeDiff = (a: number, b: number) => {
    const runs: number[] = [];
    let blocksChanged = 0;
    for (let i = 0; i < 7; i++) {
      const t = process.hrtime.bigint();
      blocksChanged = diffOf(vol, String(ev[a].id), String(ev[b].id)).blocks;
      runs.push(ms(t));
    }
    runs.sort((x, y) => x - y);
    return { medianMs: percentile(runs, 50), maxMs: runs[runs.length - 1], blocksChanged, versionsBetween: (b - a) * perEvent };
  };
  const mid = Math.min(ev.length - 1, Math.max(apart, Math.floor(ev.length / 2)));
  const lo = Math.max(0, mid - apart); // a smaller history than 10^6 versions: as far as it goes
  const far = timeDiff(lo, mid);
  const near = timeDiff(mid - 1, mid);
  const tImg = process.hrtime.bigint();
  const [ia, ib] = [await vol.read(0, SIZE, vol.resolvePoint(String(ev[lo].id))), await vol.read(0, SIZE, vol.resolvePoint(String(ev[mid].id)))];
  let differing = 0;
  for (let b = 0; b < blocks; b++) if (!ia.subarray(b * BS, (b + 1) * BS).equals(ib.subarray(b * BS, (b + 1) * BS))) differing++;
  const imageCompareMs = ms(tImg);
  lines.push(`diff ${far.versionsBetween} versions apart: median ${far.medianMs.toFixed(1)} ms (max ${far.maxMs.toFixed(1)}; ${far.blocksChanged} blocks listed, ${differing} differ by bytes); reading and comparing the two ${SIZE / 2 ** 20} MiB images: ${imageCompareMs.toFixed(0)} ms (${(imageCompareMs / far.medianMs).toFixed(1)}x)`);
  lines.push(`diff of adjacent events (${near.versionsBetween} versions apart): median ${near.medianMs.toFixed(2)} ms (max ${near.maxMs.toFixed(2)})`);
  await vol.close(); // the CLI opens it itself
  const cliDiff = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [CLI, 'diff', dir, String(ev[lo].id), String(ev[mid].id), '--json'], { maxBuffer: 1 << 28 });
  const cliDiffMs = ms(cliDiff);
  if (r.status !== 0) throw new Error(`diff CLI failed: ${r.stderr}`);
  lines.push(`  the same through the CLI on the stopped volume (process start and index load included): ${cliDiffMs.toFixed(0)} ms`);
  Object.assign(figures, { diffFarVersions: far.versionsBetween, diffFarMs: far.medianMs, diffAdjacentVersions: near.versionsBetween, diffAdjacentMs: near.medianMs, diffImageCompareMs: imageCompareMs, diffCliMs: cliDiffMs });

  vol = await Volume.open(dir, { readOnly: true });
  // Block history of the hot block (one version per round).
  const hist: number[] = [];
  let hotVersions = 0;
  for (let i = 0; i < 1000; i++) {
    const t = process.hrtime.bigint();
    hotVersions = blockHistory(whiteBox(vol).index, ev, HOT_BLOCK, 1).length;
    hist.push(ms(t));
  }
  hist.sort((x, y) => x - y);
  lines.push(`block history of a block with ${hotVersions} versions: p50 ${percentile(hist, 50).toFixed(2)} ms, p99 ${percentile(hist, 99).toFixed(2)} ms`);
  Object.assign(figures, { blockHistoryVersions: hotVersions, blockHistoryP50Ms: percentile(hist, 50), blockHistoryP99Ms: percentile(hist, 99) });

  // Timeline of the whole history: bins, then vega; the libraries are loaded once first.
  await timelineSvg(timelineOf(vol, { from: String(ev[ev.length - 1].id) }));
  const tl: Array<{ binsMs: number; svgMs: number }> = [];
  let svg = '';
  let counted = 0;
  for (let i = 0; i < 3; i++) {
    const t = process.hrtime.bigint();
    const bins = timelineOf(vol, {});
    const binsMs = ms(t);
    svg = await timelineSvg(bins);
    tl.push({ binsMs, svgMs: ms(t) - binsMs });
    counted = bins.versions;
  }
  tl.sort((x, y) => x.binsMs + x.svgMs - (y.binsMs + y.svgMs));
  const png = await svgToPng(svg);
  const svgBytes = Buffer.byteLength(svg);
  lines.push(`timeline of ${counted} versions: ${(tl[1].binsMs + tl[1].svgMs).toFixed(0)} ms (median of 3: bins ${tl[1].binsMs.toFixed(0)} ms, vega SVG ${tl[1].svgMs.toFixed(0)} ms); SVG ${(svgBytes / 1024).toFixed(0)} KiB, PNG ${(png.length / 1024).toFixed(0)} KiB`);
  await vol.close();
  const cliTl = process.hrtime.bigint();
  const out = path.join(path.dirname(dir), 'timeline.svg');
  const rt = spawnSync(process.execPath, [CLI, 'timeline', dir, '--out', out], { maxBuffer: 1 << 24 });
  if (rt.status !== 0) throw new Error(`timeline CLI failed: ${rt.stderr}`);
  const cliTimelineMs = ms(cliTl);
  lines.push(`  the same through the CLI (process start, index load and vega's load included): ${cliTimelineMs.toFixed(0)} ms, ${(fs.statSync(out).size / 1024).toFixed(0)} KiB`);
  Object.assign(figures, { timelineVersions: counted, timelineMs: tl[1].binsMs + tl[1].svgMs, timelineBinsMs: tl[1].binsMs, timelineSvgBytes: svgBytes, timelinePngBytes: png.length, timelineCliMs: cliTimelineMs });

  Object.assign(figures, await benchBisect(lines));
  return { lines, figures };
}

/**
 * 64 events over an ext4 file system; at a known one its superblock is wiped, so e2fsck -fn
 * fails from there on. chronovol bisect on the stopped volume (it mounts it itself) against the
 * same probes done by exporting each probed image whole and checking the file.
 */
async function benchBisect(lines: string[]): Promise<Record<string, unknown>> {
  const root = scratch('bisect');
  const dir = path.join(root, 'vol');
  const SIZE_B = 256 * 2 ** 20;
  await Volume.create(dir, { sizeBytes: SIZE_B, blockSizeBytes: 4096, segmentSizeBytes: 16 * 2 ** 20 });
  const img = path.join(root, 'fs.img');
  fs.writeFileSync(img, Buffer.alloc(0));
  fs.truncateSync(img, SIZE_B);
  const mk = spawnSync('mkfs.ext4', ['-q', '-F', img]);
  if (mk.status !== 0) throw new Error(`mkfs.ext4: ${mk.stderr}`);
  const vol = await Volume.open(dir);
  const fsBytes = fs.readFileSync(img);
  for (let off = 0; off < SIZE_B; off += 2 ** 20) {
    const chunk = fsBytes.subarray(off, off + 2 ** 20);
    if (chunk.some((b) => b !== 0)) await vol.write(off, chunk);
  }
  await vol.sync({ label: 'mkfs' });
  const BAD = 41;
  const rand = uniform(41);
  for (let i = 1; i <= 64; i++) {
    await vol.write((20000 + rand(40000)) * 4096, patternChunk(16 * 4096, i));
    if (i === BAD) await vol.write(0, Buffer.alloc(4096));
    await vol.sync({ label: `e${i}` });
  }
  await vol.close();
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [CLI, 'bisect', '--json', dir, '--good', 'mkfs', '--bad', 'e64', '--', 'e2fsck', '-fn', '{}'], { maxBuffer: 1 << 24, encoding: 'utf8' });
  const wallMs = ms(t);
  if (r.status !== 0) throw new Error(`bisect failed: ${r.stderr}`);
  const res = JSON.parse(r.stdout) as { firstBad: { name: string; label?: string }; probes: Array<{ point: string; elapsedMs: number }>; candidates: number };
  // Baseline: the same probes, each image exported whole to a file and checked there.
  const tb = process.hrtime.bigint();
  for (const p of res.probes) {
    const f = path.join(root, 'probe.img');
    const ex = spawnSync(process.execPath, [CLI, 'export', dir, '--at', p.point, '--out', f]);
    if (ex.status !== 0) throw new Error(`export: ${ex.stderr}`);
    spawnSync('e2fsck', ['-fn', f]);
    fs.rmSync(f);
  }
  const baselineMs = ms(tb);
  const probeMs = res.probes.map((p) => p.elapsedMs).sort((a, b) => a - b);
  lines.push(`bisect over ${res.candidates} events with e2fsck -fn (256 MiB ext4): ${res.probes.length} probes, found ${res.firstBad.name} '${res.firstBad.label}' (planted at e${BAD}), ${(wallMs / 1000).toFixed(1)} s wall (probe median ${percentile(probeMs, 50).toFixed(0)} ms); exporting each probed image whole and checking it: ${(baselineMs / 1000).toFixed(1)} s (${(baselineMs / wallMs).toFixed(1)}x)`);
  return { bisectCandidates: res.candidates, bisectProbes: res.probes.length, bisectFound: res.firstBad.label === `e${BAD}`, bisectWallMs: wallMs, bisectExportBaselineMs: baselineMs };
}
