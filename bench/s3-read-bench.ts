import { GetObjectCommand } from '@aws-sdk/client-s3';
import { FILE_NAMES } from '../src/format/constants';
import { ArchiveSettings, openStore } from '../src/archive/open-store';
import { S3Store } from '../src/archive/s3-store';
import { DEFAULTS } from '../src/options';
import { mapLimit } from '../src/util/map-limit';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { pastVolume } from './archive-crypto-bench';
import { BenchResult, pairList, paired, patternChunk, percentile, seconds, uniform } from './lib';

const VOLUME_BYTES = 32 << 20; // pastVolume's
const READ_BYTES = 1 << 20;

/**
 * Past images out of S3 (`--only s3`): a 32 MiB volume overwritten past turnover, so event 1's
 * blocks live only in the archive, on the given server.
 * - s3FirstReadP99Ms: the first 4 KiB read of event 1 from a freshly opened volume (no table or
 *   chunk cached: --archive-cache 0), at a random block, 40 times; p99 (target <= 20 ms on the local Ceph).
 * - s3FirstReadWarmP99Ms: the same read from a fresh open with the on-disk archive cache warm
 *   (event 1 read whole once before), alternating with the cold one, same block; p99.
 * - s3RawGetP99Ms: the floor under the cold read: the SDK store alone, one 4 KiB ranged GET of an
 *   archived object from a fresh client (its connection opened by a first request, as a volume's
 *   open does), in the same rounds; p99 and median.
 * - s3ReadRatio: event 1 read whole, in 1 MiB Volume.read calls from a fresh volume (cache off), vs the SDK
 *   alone fetching the same archived objects in 1 MiB ranged GETs with as many in flight as the
 *   archive reader keeps (archiveReadsInFlight); back-to-back pairs (target >= 0.8).
 */
export async function benchS3Read(endpoint: string, bucket: string, server: string, rounds = 5): Promise<BenchResult> {
  const settings: ArchiveSettings = { archive: `s3://${bucket}/bench-read-${Date.now()}`, archiveEndpoint: endpoint };
  // A 32 MiB volume written over 5 times: event 1's blocks live only in the archive.
  const { dir } = await pastVolume(settings);
  /** Cold reads served by a table from the volume directory (archive-tables/): one GET each. */
  let localTables = 0;
  const fresh = async <T>(fn: (v: Volume) => Promise<T>, archiveCacheBytes = 0): Promise<T> => {
    const store = openStore(settings) as S3Store;
    const v = await Volume.open(dir, { store, readOnly: true, archiveCacheBytes });
    try {
      return await fn(v);
    } finally {
      localTables += whiteBox(v).archive.local?.stats.loaded ?? 0;
      await v.close();
      store.destroy();
    }
  };
  const rnd = uniform(17);
  const firstRead = (block: number) => async (v: Volume) => {
    const point = v.resolvePoint('event:1');
    const t = process.hrtime.bigint();
    const got = await v.read(block * 4096, 4096, point);
    const ms = seconds(t) * 1000;
    const page = Math.floor((block * 4096) / READ_BYTES);
    const off = (block * 4096) % READ_BYTES;
    if (!got.equals(patternChunk(READ_BYTES, page + 1).subarray(off, off + 4096))) throw new Error(`event 1 block ${block} read wrong`);
    return ms;
  };
  // Warm the on-disk cache: event 1 read whole once, cache on.
  await fresh(async (v) => {
    for (let at = 0; at < VOLUME_BYTES; at += READ_BYTES) await v.read(at, READ_BYTES, v.resolvePoint('event:1'));
  }, DEFAULTS.archiveCacheBytes);
  const segmentKeys = await (async () => {
    const s = openStore(settings);
    try {
      return await s.list(FILE_NAMES.archiveSegmentsPrefix);
    } finally {
      (s as S3Store).destroy();
    }
  })();
  // The server's own floor: one 4 KiB ranged GET from a fresh client whose connection is open.
  const rawGet = async (block: number) => {
    const s = openStore(settings) as S3Store;
    try {
      const key = segmentKeys[block % segmentKeys.length];
      await s.size(FILE_NAMES.archiveHead);
      const t = process.hrtime.bigint();
      await s.getRange(key, 64 + (block % 64) * 4100, 4096);
      return seconds(t) * 1000;
    } finally {
      s.destroy();
    }
  };
  const firstMs: number[] = [];
  const warmMs: number[] = [];
  const rawMs: number[] = [];
  localTables = 0;
  for (let i = 0; i < 40; i++) {
    const block = rnd(VOLUME_BYTES / 4096);
    // Back-to-back pairs, alternating which side goes first.
    if (i % 2) warmMs.push(await fresh(firstRead(block), DEFAULTS.archiveCacheBytes));
    if (i % 2) rawMs.push(await rawGet(block));
    firstMs.push(await fresh(firstRead(block)));
    if (!(i % 2)) rawMs.push(await rawGet(block));
    if (!(i % 2)) warmMs.push(await fresh(firstRead(block), DEFAULTS.archiveCacheBytes));
  }
  const coldLocal = localTables;
  warmMs.sort((a, b) => a - b);
  firstMs.sort((a, b) => a - b);
  rawMs.sort((a, b) => a - b);
  const raw = openStore(settings) as S3Store;
  const keys = (await raw.list(FILE_NAMES.archiveSegmentsPrefix)).map((k) => raw.objectKey(k));
  const sizes = await Promise.all(keys.map((k) => raw.size(k.slice(k.indexOf(FILE_NAMES.archiveSegmentsPrefix)))));
  const ranges = keys.flatMap((Key, i) => Array.from({ length: Math.ceil(sizes[i]! / READ_BYTES) }, (_, j) => ({ Key, start: j * READ_BYTES, end: Math.min(sizes[i]!, (j + 1) * READ_BYTES) - 1 })));
  // The baseline reads the same number of bytes as the image holds, from the archived objects.
  const want = ranges.slice(0, VOLUME_BYTES / READ_BYTES);
  const sdk = async () => {
    const t = process.hrtime.bigint();
    let bytes = 0;
    await mapLimit(want, DEFAULTS.archiveReadsInFlight, async (r) => {
      const res = await raw.client.send(new GetObjectCommand({ Bucket: raw.bucket, Key: r.Key, Range: `bytes=${r.start}-${r.end}` }));
      bytes += (await res.Body!.transformToByteArray()).length;
    });
    return bytes / seconds(t);
  };
  const ours = () => fresh(async (v) => {
    const point = v.resolvePoint('event:1');
    const t = process.hrtime.bigint();
    for (let at = 0; at < VOLUME_BYTES; at += READ_BYTES) {
      const got = await v.read(at, READ_BYTES, point);
      if (at === 0 && !got.equals(patternChunk(READ_BYTES, 1))) throw new Error('event 1 read wrong');
    }
    return VOLUME_BYTES / seconds(t);
  });
  try {
    const read = await paired(rounds, sdk, ours);
    const p99 = percentile(firstMs, 99);
    const mb = (x: number) => (x / 1e6).toFixed(0);
    return {
      lines: [
        `s3FirstReadP99Ms: ${p99.toFixed(1)} (first 4 KiB of event 1 from a fresh volume, archive only, ${server}, no archive cache; p50 ${percentile(firstMs, 50).toFixed(1)}, p90 ${percentile(firstMs, 90).toFixed(1)} ms, 40 reads; ${coldLocal} of the ${firstMs.length + warmMs.length} opens mapped by a local table)`,
        `s3RawGetP99Ms: ${percentile(rawMs, 99).toFixed(1)} (the SDK store alone: one 4 KiB ranged GET from a fresh, connected client, same rounds; p50 ${percentile(rawMs, 50).toFixed(1)}, p90 ${percentile(rawMs, 90).toFixed(1)} ms)`,
        `s3FirstReadWarmP99Ms: ${percentile(warmMs, 99).toFixed(1)} (the same reads with the on-disk archive cache warm; median ${percentile(warmMs, 50).toFixed(1)} ms; cold/warm p99 ${(p99 / percentile(warmMs, 99)).toFixed(1)}x)`,
        `s3ReadRatio: ${read.ratio.toFixed(2)} (event 1 of 32 MiB read whole in 1 MiB reads, archive only: ${mb(read.ours)} MB/s vs SDK ranged GETs ${mb(read.baseline)} MB/s, ${DEFAULTS.archiveReadsInFlight} in flight each; pairs ${pairList(read)})`,
      ],
      figures: { s3FirstReadP99Ms: p99, s3FirstReadMedianMs: percentile(firstMs, 50), s3FirstReadP90Ms: percentile(firstMs, 90), s3RawGetP99Ms: percentile(rawMs, 99), s3RawGetMedianMs: percentile(rawMs, 50), s3FirstReadLocalTables: coldLocal, s3FirstReadWarmP99Ms: percentile(warmMs, 99), s3FirstReadWarmMedianMs: percentile(warmMs, 50), s3ReadRatio: read.ratio, s3ReadMBps: read.ours / 1e6, s3SdkRangedGetMBps: read.baseline / 1e6, s3ReadPairs: read.ratios },
    };
  } finally {
    raw.destroy();
  }
}
