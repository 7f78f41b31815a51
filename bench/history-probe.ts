/**
 * Runs in a fresh process against a closed volume: opens it (loading the index), then measures
 * floor-lookup latency and first-read latency of past images with our cache empty and the page
 * cache dropped, and reports RSS. Prints one JSON line.
 */
import { Volume } from '../src/volume/volume';
import { dropCaches, percentile, uniform } from './lib';
import { whiteBox } from '../src/volume/white-box';

async function main(): Promise<void> {
  const dir = process.argv[2];
  const dropped = dropCaches();
  const t0 = process.hrtime.bigint();
  const vol = await Volume.open(dir);
  const openMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const core = whiteBox(vol);
  const blocks = vol.sizeBytes / vol.blockSizeBytes;
  const lastSeq = vol.lastSeq;
  const rand = uniform(4242);
  // Floor lookups at random blocks and random points in history.
  const lookups: number[] = [];
  let found = 0;
  for (let i = 0; i < 100_000; i++) {
    const block = rand(blocks);
    const seq = 1 + rand(lastSeq);
    const t = process.hrtime.bigint();
    const v = core.index.floor(block, seq);
    lookups.push(Number(process.hrtime.bigint() - t) / 1000);
    if (v) found++;
  }
  lookups.sort((a, b) => a - b);
  // First reads of past images: blocks whose version at that point has data, so the read goes
  // to the log (mostly the archive) rather than being answered from the index alone.
  const reads: number[] = [];
  for (let tries = 0; reads.length < 1000 && tries < 1_000_000; tries++) {
    const block = rand(blocks);
    const event = vol.events[rand(vol.events.length)];
    const v = core.index.floor(block, event.seq);
    if (!v || v.offset === 0) continue;
    const point = vol.resolvePoint(String(event.id));
    const t = process.hrtime.bigint();
    await vol.read(block * vol.blockSizeBytes, vol.blockSizeBytes, point);
    reads.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  reads.sort((a, b) => a - b);
  const rssMiB = process.memoryUsage().rss / 2 ** 20;
  const status = await vol.status();
  await vol.close();
  process.stdout.write(JSON.stringify({
    versions: status.index.versions, openMs, pageCacheDropped: dropped, lookupsFound: found,
    lookupP50Us: percentile(lookups, 50), lookupP99Us: percentile(lookups, 99),
    firstReadP50Ms: percentile(reads, 50), firstReadP99Ms: percentile(reads, 99), firstReads: reads.length,
    indexRunBytes: status.index.runBytes, rssMiB,
  }) + '\n');
}

void main();
